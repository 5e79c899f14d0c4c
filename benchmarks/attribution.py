"""Why a run's answers differ from the truth: the delivery order, or the resolver.

An online resolver decides each event on what it has processed so far. Two kinds of
error follow from the order events were processed in, whatever the resolver does:

- identity: the event that decides an event's user (the latest login or logout of its
  canonical client at or before its time) was processed *after* it;
- sessions: at some point the processed events of one true session had a gap of the
  timeout or more between them (a later event fills it), so two sessions were opened
  and handed out before the truth could be known;
- cross-domain: an event of the second domain's client was processed before the event
  carrying the link (``_gl``) that makes that client an alias of the first domain's.

Processing order is the order answers completed in the run (a resolver commits before
it answers, so this is its commit order, up to threads finishing in the same instant).
Errors of neither kind are the resolver's own.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from shared.domain.events import normalize_client_id
from shared.domain.identity import DEFAULT_BLOCKED_USER_IDS
from shared.errors import InvalidEvent

TIMEOUT_MICROS = 30 * 60 * 1_000_000


def _marks(
    truth: Mapping[str, Mapping[str, Any]], payloads: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[tuple[int, str]]]:
    """Per canonical client, ``(time, event_id)`` of events that set or end its user."""
    marks: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for event_id, record in truth.items():
        payload = payloads.get(event_id)
        if not record.get("valid") or payload is None:
            continue
        user = str(payload.get("user_id") or "").strip().lower()
        if (user and user not in DEFAULT_BLOCKED_USER_IDS) or payload.get("event_name") == "logout":
            marks[str(record["client_id"])].append((int(record["time_micros"]), event_id))
    for entries in marks.values():
        entries.sort()
    return marks


def _linked_early(
    truth: Mapping[str, Mapping[str, Any]],
    payloads: Mapping[str, Mapping[str, Any]],
    position: Mapping[str, int],
) -> set[str]:
    """Events of an aliased client processed before that client's link event."""
    landing: dict[str, str] = {}
    hop_events: list[tuple[str, str]] = []
    for event_id, record in truth.items():
        payload = payloads.get(event_id)
        if not record.get("valid") or payload is None:
            continue
        try:
            sent_client = normalize_client_id(payload.get("client_id"))
        except InvalidEvent:
            continue
        if sent_client == record["client_id"]:
            continue
        hop_events.append((event_id, sent_client))
        if "_gl=" in str(payload.get("page_location", "")):
            landing[sent_client] = event_id
    never = len(position)
    return {
        event_id
        for event_id, client in hop_events
        if client in landing
        and position.get(landing[client], never) > position.get(event_id, never)
    }


def attribute(
    truth: Mapping[str, Mapping[str, Any]],
    payloads: Mapping[str, Mapping[str, Any]],
    sent: Sequence[Mapping[str, Any]],
) -> dict[str, int]:
    """Counts of identity and session errors, split into ``order`` and ``resolver``."""
    position: dict[str, int] = {}
    first: dict[str, Mapping[str, Any]] = {}
    for index, line in enumerate(sent):
        event_id = str(line["event_id"])
        position.setdefault(event_id, index)
        first.setdefault(event_id, line)
    counts = dict.fromkeys(
        (
            "user_errors_order",
            "user_errors_resolver",
            "leaks_order",
            "leaks_resolver",
            "sessions_wrong_order",
            "sessions_wrong_resolver",
            "sessions_with_lost_events",
        ),
        0,
    )
    marks = _marks(truth, payloads)
    early = _linked_early(truth, payloads, position)
    for event_id, line in first.items():
        record = truth.get(event_id)
        if record is None or not record.get("valid") or line.get("user_id") == record["user_id"]:
            continue
        late = event_id in early or _decider_late(record, event_id, marks, position)
        side = "order" if late else "resolver"
        counts[f"user_errors_{side}"] += 1
        if record.get("after_logout") and line.get("user_id") is not None:
            counts[f"leaks_{side}"] += 1
    _sessions(truth, sent, position, early, counts)
    return counts


def _decider_late(
    record: Mapping[str, Any],
    event_id: str,
    marks: Mapping[str, list[tuple[int, str]]],
    position: Mapping[str, int],
) -> bool:
    entries = marks.get(str(record["client_id"]), [])
    index = bisect.bisect_right(entries, (int(record["time_micros"]), "\uffff"))
    if index == 0:
        return False
    decider = entries[index - 1][1]
    if decider == event_id:
        return False
    return position.get(decider, len(position)) > position[event_id]


def _sessions(
    truth: Mapping[str, Mapping[str, Any]],
    sent: Sequence[Mapping[str, Any]],
    position: Mapping[str, int],
    early: set[str],
    counts: dict[str, int],
) -> None:
    true_sets: dict[str, set[str]] = defaultdict(set)
    for event_id, record in truth.items():
        if record.get("valid"):
            true_sets[str(record["session_key"])].add(event_id)
    produced: dict[tuple[str, str], set[str]] = defaultdict(set)
    for line in sent:
        if line.get("session_id") is not None:
            produced[(str(line["client_id"]), str(line["session_id"]))].add(str(line["event_id"]))
    exact = {frozenset(events) for events in produced.values()}
    for events in true_sets.values():
        if frozenset(events) in exact:
            continue
        if any(event_id not in position for event_id in events):
            counts["sessions_with_lost_events"] += 1
        elif events & early or _split_while_processing(events, truth, position):
            counts["sessions_wrong_order"] += 1
        else:
            counts["sessions_wrong_resolver"] += 1


def _split_while_processing(
    events: set[str], truth: Mapping[str, Mapping[str, Any]], position: Mapping[str, int]
) -> bool:
    """True when, in processing order, the session's seen events once had a timeout gap."""
    seen: list[int] = []
    for event_id in sorted(events, key=lambda e: position[e]):
        bisect.insort(seen, int(truth[event_id]["time_micros"]))
        if any(b - a >= TIMEOUT_MICROS for a, b in itertools.pairwise(seen)):
            return True
    return False
