"""``ga4-stitch redrive``: put dead letters back into the pipeline once their cause is fixed.

A dead letter waits on one of the two dead-letter pull subscriptions
(``<dead-letter topic>-pull``, as ``terraform/pubsub.tf`` and the local pipeline name them).
Redriving re-publishes it to the topic its function reads: resolve's dead letters to the
raw-events topic, forward's to the enriched-events topic, with the original payload bytes,
the original attributes (the dead-letter bookkeeping removed) and the original ordering
key (the canonical ``client_id``), so the function sees what it saw the first time.

Two shapes arrive on a dead-letter topic, and both are understood:

- **envelope**: the JSON object a function writes for a permanent failure
  (``shared.domain.messages.dead_letter_message``): ``reason``, ``detail``, ``source``,
  ``message_id``, ``publish_time_micros``, ``attributes`` (the original ones),
  ``payload`` (the original data as text) and ``dead_lettered_at``.
- **pubsub**: what Pub/Sub itself writes after ``max_delivery_attempts``: the original
  message unchanged (data, attributes, perhaps its ordering key) plus
  ``CloudPubSubDeadLetterSource*`` attributes. Its reason is ``max_delivery_attempts``.

Invariants:

- A dead letter is acknowledged only after Pub/Sub accepted its re-publication. Every
  other one read (filtered out, skipped, past ``--limit``, failed, or read by ``list`` or
  ``--dry-run``) is released (ack deadline 0) before the run ends, so it stays for the
  next run. While a run holds messages it extends their lease, so none is read twice.
- Reasons that can never succeed on the same payload (``PERMANENT_REASONS``: the input
  contract of ``shared.domain.events.REASONS`` and of the Pub/Sub envelope and enriched
  event) are skipped unless ``include_permanent``; a payload that cannot be restored
  exactly (cut at the writer's 10,000-byte limit, a message of neither shape) is always
  skipped, because re-publishing it would publish something other than the original.
- Repeating a redrive is harmless: the resolver answers a known ``event_id`` identically
  and the forwarder's ledger sends an ``event_id`` to GA4 at most once, so a dead letter
  whose acknowledgement was lost, or that Pub/Sub dead-lettered twice, costs a duplicate
  delivery, never a duplicate in GA4.

``redrive`` works on any ``DeadLetterBus``; ``PubSubBus`` is the one over
google-cloud-pubsub (emulator or a real project with application default credentials).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from shared.domain.events import REASONS, TIME_FIELDS, normalize_client_id
from shared.errors import InvalidEvent, SettingsError
from shared.settings import Settings, Topics

if TYPE_CHECKING:
    from ga4_stitch.pipeline import PipelineInfo

__all__ = [
    "EXHAUSTED_REASON",
    "PERMANENT_REASONS",
    "DeadLetter",
    "DeadLetterBus",
    "Filters",
    "PubSubBus",
    "Received",
    "RedriveReport",
    "RedriveSetupError",
    "Route",
    "configure_parser",
    "parse_dead_letter",
    "redrive",
    "routes_for",
    "run_command",
]

SOURCES = ("resolve", "forward")
EXHAUSTED_REASON = "max_delivery_attempts"
"""The reason given to a message Pub/Sub dead-lettered itself (as ``replay`` names it)."""
PUBSUB_ATTRIBUTE_PREFIX = "CloudPubSubDeadLetter"
BOOKKEEPING_ATTRIBUTES = frozenset({"reason", "source", "message_id"})
"""Attributes a function adds to its dead letter; never part of the original message."""
PAYLOAD_LIMIT_BYTES = 10_000
"""``PubSubMessage.text`` keeps this much of the original data in an envelope."""
PERMANENT_REASONS = REASONS | frozenset({"not_pubsub", "not_base64", "bad_enriched_event"})
"""Reasons the same payload meets again whatever is fixed: the raw-event contract, a push
body that was no Pub/Sub message (its envelope holds the push body, not a payload), and an
enriched event that breaks its contract (redrive the raw event instead)."""
LEASE_SECONDS = 120
"""Ack deadline a run holds the messages it read for; a crashed run hides them this long."""
PULL_BATCH = 100

REPUBLISHED = "re-published"
WOULD_REPUBLISH = "would re-publish"
SKIPPED = "skipped"
LEFT = "left"
FAILED = "failed"


class RedriveSetupError(Exception):
    """No place to redrive from or to (no pipeline, emulator or project; bad settings)."""


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Received:
    """One message as pulled from a dead-letter subscription."""

    ack_id: str
    message_id: str
    """The dead letter's own id on the dead-letter topic."""
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)
    publish_time_micros: int | None = None
    ordering_key: str = ""


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter, decoded: why it was refused, and the message to publish again."""

    source: str
    """``resolve`` or ``forward``: whose dead-letter subscription it was read from."""
    shape: str
    """``envelope`` (a function wrote it), ``pubsub`` (Pub/Sub did) or ``unknown``."""
    reason: str
    detail: str | None
    message_id: str
    """The original message's id (an envelope's ``message_id``), else the dead letter's."""
    dead_lettered_micros: int | None
    original_publish_micros: int | None
    payload: bytes
    """The original data, to publish as is."""
    attributes: Mapping[str, str]
    """The original attributes, without dead-letter bookkeeping."""
    ordering_key: str
    event_id: str | None
    problem: str | None = None
    """Why the original cannot be restored exactly; such a dead letter is never published."""
    notes: tuple[str, ...] = ()
    """What the operator should know about publishing it again (no event id, no time)."""

    @property
    def permanent(self) -> bool:
        return self.reason in PERMANENT_REASONS

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "shape": self.shape,
            "reason": self.reason,
            "detail": self.detail,
            "message_id": self.message_id,
            "event_id": self.event_id,
            "dead_lettered_at": _iso(self.dead_lettered_micros),
            "original_publish_time": _iso(self.original_publish_micros),
            "ordering_key": self.ordering_key,
            "attributes": dict(self.attributes),
            "permanent": self.permanent,
            "problem": self.problem,
            "notes": list(self.notes),
        }


def parse_dead_letter(source: str, received: Received) -> DeadLetter:
    """Decode either shape; never raises. Pub/Sub's attributes decide first, because an
    original payload may itself be JSON with ``reason`` and ``payload`` keys."""
    if any(name.startswith(PUBSUB_ATTRIBUTE_PREFIX) for name in received.attributes):
        return _from_pubsub(source, received)
    body = _json_value(received.data)
    if isinstance(body, dict) and isinstance(body.get("reason"), str) and "payload" in body:
        return _from_envelope(source, received, body)
    return DeadLetter(
        source=source,
        shape="unknown",
        reason=str(received.attributes.get("reason") or "unknown"),
        detail=None,
        message_id=received.message_id,
        dead_lettered_micros=received.publish_time_micros,
        original_publish_micros=None,
        payload=received.data,
        attributes=original_attributes(received.attributes),
        ordering_key=received.ordering_key,
        event_id=None,
        problem="neither a ga4-stitch dead-letter envelope nor a message Pub/Sub dead-lettered",
    )


def _from_envelope(source: str, received: Received, body: Mapping[str, Any]) -> DeadLetter:
    text = body.get("payload")
    payload = text.encode("utf-8") if isinstance(text, str) else b""
    problem = None
    if not isinstance(text, str):
        problem = "the envelope holds no payload text"
    elif len(payload) >= PAYLOAD_LIMIT_BYTES and _json_value(payload) is None:
        problem = f"the payload was cut at {PAYLOAD_LIMIT_BYTES} bytes when it was dead-lettered"
    elif body.get("source") not in (None, source):
        problem = f"the envelope names source {body.get('source')!r}, not {source!r}"
    kept = body.get("attributes")
    attributes = original_attributes(kept if isinstance(kept, Mapping) else received.attributes)
    content = _json_value(payload)
    detail = body.get("detail")
    published = body.get("publish_time_micros")
    return DeadLetter(
        source=source,
        shape="envelope",
        reason=str(body["reason"]),
        detail=detail if isinstance(detail, str) else None,
        message_id=str(body.get("message_id") or received.attributes.get("message_id") or ""),
        dead_lettered_micros=_iso_micros(body.get("dead_lettered_at"))
        or received.publish_time_micros,
        original_publish_micros=published if isinstance(published, int) else None,
        payload=payload,
        attributes=attributes,
        ordering_key=ordering_key(source, attributes, content),
        event_id=_event_id(source, attributes, content),
        problem=problem,
        notes=_notes(source, content),
    )


def _from_pubsub(source: str, received: Received) -> DeadLetter:
    attributes = original_attributes(received.attributes)
    content = _json_value(received.data)
    prefix = PUBSUB_ATTRIBUTE_PREFIX
    deliveries = received.attributes.get(f"{prefix}SourceDeliveryCount", "?")
    subscription = received.attributes.get(f"{prefix}SourceSubscription", "?")
    error = received.attributes.get(f"{prefix}SourceDeliveryErrorMessage")
    detail = f"{deliveries} delivery attempts on {subscription}" + (f": {error}" if error else "")
    return DeadLetter(
        source=source,
        shape="pubsub",
        reason=EXHAUSTED_REASON,
        detail=detail,
        message_id=received.message_id,
        dead_lettered_micros=received.publish_time_micros,
        original_publish_micros=_iso_micros(
            received.attributes.get(f"{prefix}SourceTopicPublishTime")
        ),
        payload=received.data,
        attributes=attributes,
        ordering_key=received.ordering_key or ordering_key(source, attributes, content),
        event_id=_event_id(source, attributes, content),
        notes=_notes(source, content),
    )


def original_attributes(attributes: Mapping[str, Any]) -> dict[str, str]:
    """Attributes as the original publisher set them: Pub/Sub's ``CloudPubSubDeadLetter*``
    and a function's ``reason``/``source``/``message_id`` removed."""
    return {
        str(name): str(value)
        for name, value in attributes.items()
        if name not in BOOKKEEPING_ATTRIBUTES and not str(name).startswith(PUBSUB_ATTRIBUTE_PREFIX)
    }


def ordering_key(source: str, attributes: Mapping[str, str], content: Any) -> str:
    """The key the original publisher used: the canonical client id (the GTM SC tag drops
    the ``GA1.n.`` prefix, the resolver keys enriched events by its canonical client). An
    id that does not normalise is used as is; no id at all gives no key."""
    client: Any = attributes.get("client_id")
    if not client and isinstance(content, dict):
        resolved = content.get("resolved")
        if source == "forward" and isinstance(resolved, dict):
            client = resolved.get("client_id")
        else:
            client = content.get("client_id")
    if not isinstance(client, str) or not client.strip():
        return ""
    if source == "resolve":
        with contextlib.suppress(InvalidEvent):
            return normalize_client_id(client)
    return client.strip()


def _event_id(source: str, attributes: Mapping[str, str], content: Any) -> str | None:
    if attributes.get("event_id"):
        return attributes["event_id"]
    if not isinstance(content, dict):
        return None
    resolved = content.get("resolved")
    value = resolved.get("event_id") if source == "forward" and isinstance(resolved, dict) else None
    value = value or content.get("event_id")
    return str(value) if value else None


def _notes(source: str, content: Any) -> tuple[str, ...]:
    """What changes when a raw event is published anew: the resolver falls back to the new
    message's id and publish time for what the event itself does not say."""
    if source != "resolve" or not isinstance(content, dict):
        return ()
    notes = []
    if not content.get("event_id"):
        notes.append("no event_id: keyed by the new message id, so a repeat is not deduplicated")
    if not any(content.get(name) not in (None, "") for name in TIME_FIELDS):
        notes.append("no event time: the resolver uses the time of re-publication")
    return tuple(notes)


def _json_value(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return None


def _iso_micros(value: Any) -> int | None:
    """An ISO 8601 / RFC 3339 time as Unix micros (naive means UTC); None if it is none."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:  # fromisoformat takes at most six fraction digits
        head, _, rest = text.partition(".")
        digits = "".join(char for char in rest if char.isdigit())
        text = f"{head}.{(digits + '000000')[:6]}{rest[len(digits) :]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _iso(micros: int | None) -> str | None:
    if micros is None:
        return None
    moment = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
        microsecond=micros % 1_000_000
    )
    return moment.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """Which dead letters a run handles. Times apply to when a message was dead-lettered
    (an envelope's ``dead_lettered_at``, else the dead letter's publish time): ``since``
    inclusive, ``until`` exclusive. ``limit`` counts dead letters that match."""

    reasons: frozenset[str] = frozenset()
    since_micros: int | None = None
    until_micros: int | None = None
    limit: int | None = None
    include_permanent: bool = False

    def matches(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        moment = letter.dead_lettered_micros
        if self.since_micros is not None and (moment is None or moment < self.since_micros):
            return False
        return self.until_micros is None or (moment is not None and moment < self.until_micros)

    def skip_reason(self, letter: DeadLetter) -> str | None:
        """Why a matching dead letter is not published, or None to publish it."""
        if letter.problem:
            return f"cannot be restored: {letter.problem}"
        if letter.permanent and not self.include_permanent:
            return "permanent reason (--include-permanent to publish anyway)"
        return None


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Route:
    source: str
    subscription: str
    """Short name of the dead-letter pull subscription read."""
    topic: str
    """Short name of the topic its dead letters are published to again."""


def routes_for(topics: Topics, sources: Sequence[str] = SOURCES) -> list[Route]:
    """Where each source's dead letters wait and where they go (``terraform/pubsub.tf``)."""
    table = {
        "resolve": Route("resolve", f"{topics.resolve_dead_letter}-pull", topics.raw_events),
        "forward": Route("forward", f"{topics.forward_dead_letter}-pull", topics.enriched),
    }
    return [table[source] for source in sources]


@dataclass(frozen=True)
class Republication:
    topic: str
    data: bytes
    ordering_key: str
    attributes: Mapping[str, str]


class DeadLetterBus(Protocol):
    """What a run needs of Pub/Sub. Names are short (the bus adds the project)."""

    def pull(self, subscription: str, max_messages: int) -> list[Received]:
        """Up to ``max_messages``; an empty list when none are available now."""
        ...

    def hold(self, subscription: str, ack_ids: Sequence[str], seconds: int) -> None:
        """Extend the lease of messages being worked on (best effort)."""
        ...

    def release(self, subscription: str, ack_ids: Sequence[str]) -> None:
        """Ack deadline 0: the messages are available again at once (best effort)."""
        ...

    def acknowledge(self, subscription: str, ack_ids: Sequence[str]) -> str | None:
        """Remove the messages; the error's text when that failed."""
        ...

    def publish(self, messages: Sequence[Republication]) -> list[str | None]:
        """Publish all, wait for each; per message None (accepted) or the error's text."""
        ...


@dataclass(frozen=True)
class Handled:
    letter: DeadLetter
    action: str
    note: str | None = None

    def line(self, topic: str) -> str:
        letter = self.letter
        published = self.action in {REPUBLISHED, WOULD_REPUBLISH}
        where = f" -> {topic} key {letter.ordering_key or '-'}" if published else ""
        notes = "; ".join([*([self.note] if self.note else []), *letter.notes])
        return (
            f"{self.action:<16} {letter.source:<7} {letter.reason:<22} "
            f"{_iso(letter.dead_lettered_micros) or '-':<27} message {letter.message_id or '-'} "
            f"event {letter.event_id or '-'}{where}" + (f"  ({notes})" if notes else "")
        )


@dataclass
class RedriveReport:
    """Every dead letter a run read, with what it did to it."""

    mode: str
    """``redrive``, ``dry_run`` or ``list``."""
    routes: list[Route] = field(default_factory=list)
    handled: list[Handled] = field(default_factory=list)
    acknowledgement_failures: int = 0

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(item.action for item in self.handled)
        published = REPUBLISHED if self.mode == "redrive" else WOULD_REPUBLISH
        return {name: counts[name] for name in (published, SKIPPED, LEFT, FAILED)}

    @property
    def ok(self) -> bool:
        """False when a publish or an acknowledgement failed."""
        return not any(item.action == FAILED for item in self.handled) and not (
            self.acknowledgement_failures
        )

    def topic_of(self, source: str) -> str:
        return next((route.topic for route in self.routes if route.source == source), "?")

    def lines(self, *, all_messages: bool) -> list[str]:
        """One line per dead letter (those left for not matching only with ``all_messages``)."""
        return [
            item.line(self.topic_of(item.letter.source))
            for item in self.handled
            if all_messages or item.action != LEFT
        ]

    def summary(self) -> str:
        parts = [f"{name} {count}" for name, count in self.counts.items()]
        skipped = Counter(item.letter.reason for item in self.handled if item.action == SKIPPED)
        if skipped:
            parts[1] += f" ({', '.join(f'{r} {n}' for r, n in sorted(skipped.items()))})"
        text = ", ".join(parts)
        if self.acknowledgement_failures:
            text += f"; {self.acknowledgement_failures} re-published but not acknowledged"
        if self.mode != "redrive":
            text += "; nothing changed"
        return text

    def groups(self) -> list[dict[str, Any]]:
        """Dead letters matching the filters, counted by source and reason, with the time
        range in which they were dead-lettered."""
        found: dict[tuple[str, str], list[int | None]] = {}
        for item in self.handled:
            if item.action != LEFT:
                key = (item.letter.source, item.letter.reason)
                found.setdefault(key, []).append(item.letter.dead_lettered_micros)
        groups = []
        for (source, reason), moments in sorted(found.items()):
            known = [moment for moment in moments if moment is not None]
            groups.append(
                {
                    "source": source,
                    "reason": reason,
                    "count": len(moments),
                    "permanent": reason in PERMANENT_REASONS,
                    "first": _iso(min(known)) if known else None,
                    "last": _iso(max(known)) if known else None,
                }
            )
        return groups

    def listing(self) -> str:
        groups = self.groups()
        lines = [f"{'source':<8} {'reason':<28} {'count':>6}  first dead-lettered .. last"]
        for group in groups:
            reason = group["reason"] + (" (permanent)" if group["permanent"] else "")
            lines.append(
                f"{group['source']:<8} {reason:<28} {group['count']:>6}  "
                f"{group['first'] or '-'} .. {group['last'] or '-'}"
            )
        moments = [i.letter.dead_lettered_micros for i in self.handled if i.action != LEFT]
        known = [moment for moment in moments if moment is not None]
        span = f", {_iso(min(known))} .. {_iso(max(known))}" if known else ""
        left = self.counts[LEFT]
        more = f"; {left} more not matching the filters" if left else ""
        lines.append(f"total {len(moments)}{span}{more}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "counts": self.counts,
            "acknowledgement_failures": self.acknowledgement_failures,
            "ok": self.ok,
            "routes": [vars(route) for route in self.routes],
            "groups": self.groups(),
            "messages": [
                {**item.letter.to_json(), "action": item.action, "note": item.note}
                for item in self.handled
            ],
        }


def redrive(
    bus: DeadLetterBus,
    routes: Sequence[Route],
    filters: Filters,
    mode: str = "redrive",
    *,
    quiet_pulls: int = 2,
    pause_seconds: float = 0.2,
) -> RedriveReport:
    """Read each route's dead letters and, in ``redrive`` mode, publish the matching ones
    again; see the module docstring for what is acknowledged and what is released. A read
    ends after ``quiet_pulls`` pulls in a row bring nothing new (or at ``filters.limit``)."""
    if mode not in {"redrive", "dry_run", "list"}:
        raise ValueError(f"unknown mode {mode!r}")
    report = RedriveReport(mode, list(routes))
    for route in routes:
        _Run(
            bus, route, filters, report, quiet_pulls=quiet_pulls, pause_seconds=pause_seconds
        ).run()
    return report


class _Run:
    """One route's read, decisions and publications; releases what it holds, always."""

    def __init__(
        self,
        bus: DeadLetterBus,
        route: Route,
        filters: Filters,
        report: RedriveReport,
        *,
        quiet_pulls: int,
        pause_seconds: float,
    ) -> None:
        self.bus, self.route, self.filters, self.report = bus, route, filters, report
        self.quiet_pulls, self.pause_seconds = quiet_pulls, pause_seconds
        self.held: dict[str, str] = {}
        """Dead-letter message id -> latest ack id, for every message read and not acked."""
        self.acknowledged: set[str] = set()
        self.matched = 0

    def run(self) -> None:
        candidates: list[tuple[Received, DeadLetter]] = []
        try:
            for received in self._read():
                letter = parse_dead_letter(self.route.source, received)
                if not self.filters.matches(letter):
                    self._record(letter, LEFT, "does not match the filters")
                elif self._limit_reached():
                    self._record(letter, LEFT, "past --limit")
                else:
                    self.matched += 1
                    skip = self.filters.skip_reason(letter)
                    if skip:
                        self._record(letter, SKIPPED, skip)
                    else:
                        candidates.append((received, letter))
            # Oldest first, so one client's events reach its ordering key in their order.
            candidates.sort(key=lambda pair: pair[1].original_publish_micros or 0)
            if self.report.mode == "redrive":
                self._publish(candidates)
            else:
                for _, letter in candidates:
                    self._record(letter, WOULD_REPUBLISH)
        finally:
            if self.held:
                self.bus.release(self.route.subscription, list(self.held.values()))

    def _limit_reached(self) -> bool:
        return self.filters.limit is not None and self.matched >= self.filters.limit

    def _read(self) -> Iterator[Received]:
        quiet = 0
        while quiet < self.quiet_pulls and not self._limit_reached():
            batch = self.bus.pull(self.route.subscription, PULL_BATCH)
            if batch:
                ids = [item.ack_id for item in batch]
                self.bus.hold(self.route.subscription, ids, LEASE_SECONDS)
            fresh = []
            for item in batch:
                if item.message_id in self.acknowledged:
                    # Redelivered although acknowledged (a lost ack): acknowledge again.
                    self.bus.acknowledge(self.route.subscription, [item.ack_id])
                elif item.message_id in self.held:
                    self.held[item.message_id] = item.ack_id  # the newest ack id counts
                else:
                    self.held[item.message_id] = item.ack_id
                    fresh.append(item)
            if not fresh:
                quiet += 1
                if self.pause_seconds:
                    time.sleep(self.pause_seconds)
                continue
            quiet = 0
            yield from fresh

    def _publish(self, candidates: Sequence[tuple[Received, DeadLetter]]) -> None:
        if not candidates:
            return
        errors = self.bus.publish(
            [
                Republication(self.route.topic, d.payload, d.ordering_key, d.attributes)
                for _, d in candidates
            ]
        )
        published = []
        for (received, letter), error in zip(candidates, errors, strict=True):
            if error is None:
                published.append((received, letter))
            else:
                self._record(letter, FAILED, f"publish failed: {error}")
        ack_ids = [self.held.pop(received.message_id) for received, _ in published]
        error = self.bus.acknowledge(self.route.subscription, ack_ids) if ack_ids else None
        note = None
        if error is not None:
            self.report.acknowledgement_failures += len(ack_ids)
            note = f"not acknowledged ({error}): a later run publishes it again, harmlessly"
        for received, letter in published:
            self.acknowledged.add(received.message_id)
            self._record(letter, REPUBLISHED, note)

    def _record(self, letter: DeadLetter, action: str, note: str | None = None) -> None:
        self.report.handled.append(Handled(letter, action, note))


# --------------------------------------------------------------------------- Pub/Sub


class PubSubBus:
    """``DeadLetterBus`` over google-cloud-pubsub. Clients read ``PUBSUB_EMULATOR_HOST``
    when built: build this inside ``client_environment`` for an attached pipeline.

    On the emulator a pull returns at once (``return_immediately``); on a real project a
    pull waits up to ``pull_timeout`` seconds, since an immediate pull may return nothing
    while messages are waiting."""

    def __init__(
        self,
        project: str,
        *,
        emulator: bool,
        pull_timeout: float = 5.0,
        publish_timeout: float = 30.0,
    ) -> None:
        from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient, types

        self._project = project
        self._emulator = emulator
        self._pull_timeout = pull_timeout
        self._publish_timeout = publish_timeout
        self._subscriber = SubscriberClient()
        self._publisher = PublisherClient(
            batch_settings=types.BatchSettings(max_latency=0.01),
            publisher_options=types.PublisherOptions(enable_message_ordering=True),
        )

    def _subscription(self, name: str) -> str:
        return str(self._subscriber.subscription_path(self._project, name))

    def pull(self, subscription: str, max_messages: int) -> list[Received]:
        from google.api_core import exceptions as gexc

        request: dict[str, Any] = {
            "subscription": self._subscription(subscription),
            "max_messages": max_messages,
        }
        if self._emulator:
            request["return_immediately"] = True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                response = self._subscriber.pull(request=request, timeout=self._pull_timeout)
        except gexc.DeadlineExceeded:
            return []
        return [
            Received(
                ack_id=item.ack_id,
                message_id=item.message.message_id,
                data=bytes(item.message.data),
                attributes=dict(item.message.attributes),
                publish_time_micros=_datetime_micros(item.message.publish_time),
                ordering_key=item.message.ordering_key or "",
            )
            for item in response.received_messages
        ]

    def _modify(self, subscription: str, ack_ids: Sequence[str], seconds: int) -> None:
        from google.api_core import exceptions as gexc

        for start in range(0, len(ack_ids), 500):
            with contextlib.suppress(gexc.GoogleAPIError):
                self._subscriber.modify_ack_deadline(
                    request={
                        "subscription": self._subscription(subscription),
                        "ack_ids": list(ack_ids[start : start + 500]),
                        "ack_deadline_seconds": seconds,
                    }
                )

    def hold(self, subscription: str, ack_ids: Sequence[str], seconds: int) -> None:
        self._modify(subscription, ack_ids, seconds)

    def release(self, subscription: str, ack_ids: Sequence[str]) -> None:
        self._modify(subscription, ack_ids, 0)

    def acknowledge(self, subscription: str, ack_ids: Sequence[str]) -> str | None:
        from google.api_core import exceptions as gexc

        try:
            for start in range(0, len(ack_ids), 500):
                self._subscriber.acknowledge(
                    request={
                        "subscription": self._subscription(subscription),
                        "ack_ids": list(ack_ids[start : start + 500]),
                    }
                )
        except gexc.GoogleAPIError as exc:
            return str(exc) or type(exc).__name__
        return None

    def publish(self, messages: Sequence[Republication]) -> list[str | None]:
        """A failed publish pauses its ordering key inside the client library: later
        messages of that key fail too (and are reported), and the key is resumed after."""
        from google.api_core import exceptions as gexc
        from google.cloud.pubsub_v1.publisher import exceptions as pexc

        failures = (
            gexc.GoogleAPIError,
            TimeoutError,
            RuntimeError,
            ValueError,
            pexc.PublishToPausedOrderingKeyException,
        )
        results: list[str | None] = []
        pending: list[tuple[int, str, str, Any]] = []
        for index, message in enumerate(messages):
            path = str(self._publisher.topic_path(self._project, message.topic))
            results.append(None)
            try:
                future = self._publisher.publish(
                    path, message.data, ordering_key=message.ordering_key, **message.attributes
                )
            except failures as exc:
                results[index] = str(exc) or type(exc).__name__
                continue
            pending.append((index, path, message.ordering_key, future))
        paused = set()
        for index, path, key, future in pending:
            try:
                future.result(timeout=self._publish_timeout)
            except failures as exc:
                results[index] = str(exc) or type(exc).__name__
                if key:
                    paused.add((path, key))
        for path, key in paused:
            self._publisher.resume_publish(path, key)
        return results


def _datetime_micros(value: Any) -> int | None:
    """A pulled message's publish time (a ``datetime`` from proto-plus) as Unix micros."""
    if not isinstance(value, datetime):
        return None
    moment: datetime = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


# --------------------------------------------------------------------------- command line


def _iso_argument(text: str) -> int:
    micros = _iso_micros(text)
    if micros is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time")
    return micros


def _limit_argument(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The options of ``ga4-stitch redrive`` (the CLI adds ``--state-dir`` and
    ``--pipeline-from``)."""
    parser.add_argument(
        "action",
        nargs="?",
        choices=("list",),
        help="list: count dead letters by source and reason, change nothing",
    )
    parser.add_argument("--list", action="store_true", dest="list_only", help="same as `list`")
    parser.add_argument(
        "--source", choices=SOURCES, help="only resolve's (raw events) or forward's dead letters"
    )
    parser.add_argument(
        "--reason", action="append", default=[], metavar="R", help="only this reason (repeatable)"
    )
    parser.add_argument(
        "--since",
        type=_iso_argument,
        metavar="ISO",
        help="dead-lettered at or after this (UTC if naive)",
    )
    parser.add_argument("--until", type=_iso_argument, metavar="ISO", help="dead-lettered before")
    parser.add_argument(
        "--limit", type=_limit_argument, metavar="N", help="handle at most N matching dead letters"
    )
    parser.add_argument(
        "--include-permanent",
        action="store_true",
        help="also publish reasons that will fail again (bad input: missing_client_id, ...)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be re-published, change nothing"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="one line per dead letter read"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


@dataclass(frozen=True)
class Target:
    """Where a run reads and publishes: a project, how to reach its Pub/Sub, its topics."""

    project: str
    topics: Topics
    pubsub_host: str | None
    """An emulator's host, or None for the real Pub/Sub (application default credentials)."""
    firestore_host: str | None = None

    def bus(self) -> PubSubBus:
        if self.pubsub_host is None:
            return PubSubBus(self.project, emulator=False)
        from ga4_stitch.pipeline import client_environment

        with client_environment(self.project, self.pubsub_host, self.firestore_host or ""):
            return PubSubBus(self.project, emulator=True)


def target_for(info: PipelineInfo | None, environ: Mapping[str, str]) -> Target:
    """The running pipeline's emulator, else ``PUBSUB_EMULATOR_HOST``, else the real
    ``GOOGLE_CLOUD_PROJECT``; topic names from the settings the functions read."""
    if info is not None:
        topics = Topics(**{name: info.topics[name] for name in Topics.__dataclass_fields__})
        return Target(info.project, topics, info.pubsub_host, info.firestore_host)
    env = dict(environ)
    host = env.get("PUBSUB_EMULATOR_HOST", "").strip() or None
    if host is not None:
        from ga4_stitch.pipeline import PROJECT

        env.setdefault("GOOGLE_CLOUD_PROJECT", PROJECT)
    elif not env.get("GOOGLE_CLOUD_PROJECT", "").strip():
        raise RedriveSetupError(
            "no running pipeline, and neither PUBSUB_EMULATOR_HOST nor GOOGLE_CLOUD_PROJECT is set"
        )
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        raise RedriveSetupError(str(exc)) from exc
    firestore = env.get("FIRESTORE_EMULATOR_HOST", "").strip() or None
    return Target(settings.project, settings.topics, host, firestore)


def run_command(
    args: argparse.Namespace,
    info: PipelineInfo | None,
    out: TextIO,
    report: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
) -> int:
    """``ga4-stitch redrive``: 0 done, 1 a publish or an acknowledgement failed."""
    listing = args.action == "list" or args.list_only
    if args.since is not None and args.until is not None and args.since >= args.until:
        raise RedriveSetupError("--since must be before --until")
    target = target_for(info, os.environ if environ is None else environ)
    mode = "list" if listing else "dry_run" if args.dry_run else "redrive"
    filters = Filters(
        reasons=frozenset(args.reason),
        since_micros=args.since,
        until_micros=args.until,
        limit=args.limit,
        include_permanent=args.include_permanent,
    )
    routes = routes_for(target.topics, [args.source] if args.source else SOURCES)
    where = f"emulator {target.pubsub_host}" if target.pubsub_host else "Pub/Sub"
    for route in routes:
        report(f"reading {route.subscription} ({where}, project {target.project})")
    result = redrive(target.bus(), routes, filters, mode)
    if args.json:
        print(json.dumps(result.to_json(), indent=2), file=out)
    elif listing:
        print(result.listing(), file=out)
    else:
        for item in result.handled:
            if args.verbose or (args.dry_run and item.action != LEFT) or item.action == FAILED:
                print(item.line(result.topic_of(item.letter.source)), file=out)
        print(result.summary(), file=out)
    return 0 if result.ok else 1
