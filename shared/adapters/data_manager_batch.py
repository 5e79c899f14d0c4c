"""Request batching for the Data Manager API sender: many events, one ``ingestEvents``.

Why: the API allows 300 ingest requests a minute and 100,000 a day per Cloud project
(https://developers.google.com/data-manager/api/limits), with up to 2,000 events per
request. One request per event caps a project at 5 events a second; the forward function
runs many deliveries at once on one instance (Cloud Run concurrency, functions-framework
threads), so their events can share a request.

How: the first ``send`` of a stream (measurement id) opens a window and leads it: it waits
up to ``window_seconds`` (or until the window holds ``max_events`` events), takes every
caller that joined, merges their mapped requests into one and delivers it; each other
caller blocks on its own ``threading.Event`` until the leader has settled its outcome, then
returns or raises it in its own thread. No thread is started here: every wait and every
request happens on a caller's own request thread, so nothing outlives a delivery.

Invariants:
- A caller's outcome means what it means for a lone request: ``send`` returns only when
  the API took the caller's events, raises ``PermanentError`` only when the API refused
  them, ``Ga4OutcomeUnknown`` when a request carrying them may have been taken, and
  another ``TransientError`` only when no request carrying them can have been taken.
- Never sent twice when it may have been taken: the API refuses a request whole, so after
  a refusal the callers it does not name are re-sent without the named ones (at most
  ``MAX_ROUNDS`` requests in all); a refusal naming no event of the batch sends each
  remaining caller's own request alone, from its own thread, so each gets its own outcome.
  After an unknown outcome or a transient failure nothing is re-sent.
- Time: every caller returns within ``window_seconds`` plus the sender's retry budget plus
  one attempt: re-sends and lone sends share the budget that the first request started.
- A merged request keeps each caller's meaning: destinations are shared by ``reference``
  (a reference that would name two different destinations starts a new batch), events are
  concatenated in arrival order (a purchase's Google Ads copy stays beside its GA4 event,
  owned by the same caller), the request-level consent moves onto each event's own
  ``consent`` (the event's own values win, as the API applies them), and ``encoding`` is
  ``HEX`` when any caller's request has it (it applies to user identifiers only; the
  mapping hashes them all as hex). A batch never exceeds ``max_events`` events (at most
  2,000) nor ``MAX_DESTINATIONS`` destinations, unless one caller's request alone does.
- Different measurement ids never share a request (one window per stream).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from shared.domain.datamanager import GA4_ACCOUNT_TYPE, dead_letter_reason
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger
from shared.ports import Ga4OutcomeUnknown

__all__ = [
    "MAX_DESTINATIONS",
    "MAX_EVENTS",
    "MAX_ROUNDS",
    "Batcher",
    "Deliver",
    "ga4_event_ids",
    "merged_request",
]

log = get_logger("data_manager")

MAX_EVENTS: Final = 2000
"""Events per ``IngestEventsRequest`` (the API's limit)."""
MAX_DESTINATIONS: Final = 10
"""Destinations per ``IngestEventsRequest`` (the API's limit)."""
MAX_ROUNDS: Final = 3
"""Batched requests per batch: the first, then at most two re-sends after refusals that
name their events; then each remaining caller is sent alone."""
_EVENT_PATH = re.compile(r"^events\[(\d+)\]")

Deliver = Callable[[Mapping[str, Any], Sequence[str | None], float, Mapping[str, Any]], None]
"""``deliver(request, event_ids, budget_seconds, log_fields)``: one request with the
sender's retries within ``budget_seconds``; ``event_ids`` names each GA4 event's event."""


def _ga4_references(request: Mapping[str, Any]) -> set[str]:
    return {
        str(d.get("reference"))
        for d in request.get("destinations") or []
        if (d.get("operating_account") or {}).get("account_type") == GA4_ACCOUNT_TYPE
    }


def ga4_event_ids(request: Mapping[str, Any], event_id: str | None) -> list[str | None]:
    """``event_id`` once per GA4 event of one caller's request (its Google Ads copies are
    not GA4 events), so a merged request's ids line up with its GA4 events."""
    ga4 = _ga4_references(request)
    return [
        event_id
        for event in request.get("events") or []
        if set(event.get("destination_references") or ga4) & ga4
    ]


def merged_request(parts: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[range]]:
    """One ``IngestEventsRequest`` (plain dict) carrying every part's events, and the range
    of event indexes each part owns (module invariants). One part is returned unchanged."""
    if len(parts) == 1:
        return dict(parts[0]), [range(len(parts[0].get("events") or []))]
    destinations: dict[str, Mapping[str, Any]] = {}
    events: list[dict[str, Any]] = []
    spans: list[range] = []
    hex_encoded = False
    for part in parts:
        for destination in part.get("destinations") or []:
            destinations.setdefault(str(destination.get("reference")), destination)
        shared = part.get("consent") or {}
        start = len(events)
        for event in part.get("events") or []:
            own = dict(event)
            consent = {**shared, **(event.get("consent") or {})}
            if consent:
                own["consent"] = consent
            events.append(own)
        spans.append(range(start, len(events)))
        hex_encoded = hex_encoded or part.get("encoding") == "HEX"
    request: dict[str, Any] = {"destinations": list(destinations.values()), "events": events}
    if hex_encoded:
        request["encoding"] = "HEX"
    return request, spans


@dataclass
class _Caller:
    """One ``send`` waiting for its batch: its mapped request and, once settled, its fate."""

    request: Mapping[str, Any]
    event_id: str | None
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    alone_budget: float | None = None
    """Set: send this caller's own request alone, with this many seconds of budget."""

    @property
    def events(self) -> int:
        return len(self.request.get("events") or [])


@dataclass
class _Window:
    """The callers gathered for one request of one stream."""

    callers: list[_Caller] = field(default_factory=list)
    events: int = 0
    destinations: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    full: threading.Event = field(default_factory=threading.Event)

    def fits(self, caller: _Caller, max_events: int) -> bool:
        if not self.callers:
            return True
        references = dict(self.destinations)
        for destination in caller.request.get("destinations") or []:
            reference = str(destination.get("reference"))
            if references.setdefault(reference, destination) != destination:
                return False
        return self.events + caller.events <= max_events and len(references) <= MAX_DESTINATIONS

    def add(self, caller: _Caller) -> None:
        self.callers.append(caller)
        self.events += caller.events
        for destination in caller.request.get("destinations") or []:
            self.destinations.setdefault(str(destination.get("reference")), destination)


def _violations(refusal: PermanentError) -> tuple[dict[str, Any], list[dict[str, str]]]:
    try:
        detail = json.loads(refusal.detail)
    except ValueError:
        return {}, []
    if not isinstance(detail, dict):
        return {}, []
    violations = detail.get("violations")
    return detail, [v for v in violations or [] if isinstance(v, dict)]


def _rebased(path: str, span: range) -> str:
    """``events[7].event_name`` of a merged request as the caller's own ``events[1]...``."""
    return _EVENT_PATH.sub(lambda m: f"events[{int(m[1]) - span.start}]", path, count=1)


def _own_refusal(
    refusal: PermanentError,
    detail: Mapping[str, Any],
    violations: list[dict[str, str]],
    span: range,
) -> PermanentError:
    """The refusal as the caller would have had it alone: its own violations, its paths."""
    own = [{**v, "field": _rebased(v["field"], span)} for v in violations]
    reason = next((v["reason"] for v in own if v.get("reason")), None)
    text = {
        **detail,
        "field": own[0]["field"],
        "violations": own,
        "batched": True,
    }
    if reason is not None:
        text["reason"] = reason
    return PermanentError(
        dead_letter_reason(reason) if reason else refusal.reason,
        json.dumps(text, ensure_ascii=False),
    )


def _copy(error: TransientError) -> TransientError:
    """The same outcome for one more caller (each thread raises its own instance)."""
    copied = type(error).__new__(type(error))
    copied.__dict__.update(error.__dict__)
    copied.args = error.args
    copied.__cause__ = error
    return copied


class Batcher:
    """Gathers concurrent sends per stream into one request (module docstring)."""

    def __init__(
        self,
        deliver: Deliver,
        *,
        window_seconds: float,
        max_events: int,
        budget_seconds: float,
        attempt_seconds: float,
        not_taken: Callable[[str], TransientError] = TransientError,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= max_events <= MAX_EVENTS:
            raise ValueError(f"max_events must be between 1 and {MAX_EVENTS}")
        self._deliver = deliver
        self._window = max(window_seconds, 0.0)
        self._max_events = max_events
        self._budget = budget_seconds
        self._clock = clock
        self._not_taken = not_taken
        self._longest_wait = self._window + budget_seconds + attempt_seconds + 5.0
        """A follower's wait, beyond which its leader cannot still be working."""
        self._lock = threading.Lock()
        self._open: dict[str, _Window] = {}

    def send(self, key: str, request: Mapping[str, Any], event_id: str | None) -> None:
        """Deliver ``request`` (one caller's mapped request) in a batch of stream ``key``;
        return or raise this caller's own outcome (module invariants)."""
        caller = _Caller(request, event_id)
        with self._lock:
            window = self._open.get(key)
            if window is not None and not window.fits(caller, self._max_events):
                self._close(key, window)
                window = None
            leads = window is None
            if window is None:
                window = self._open[key] = _Window()
            window.add(caller)
            if window.events >= self._max_events:
                self._close(key, window)
        if leads:
            window.full.wait(self._window)
            with self._lock:
                if self._open.get(key) is window:
                    del self._open[key]
                callers = list(window.callers)
            self._lead(callers)
        elif not caller.done.wait(self._longest_wait):
            raise Ga4OutcomeUnknown("the batch carrying this event never settled")
        if caller.alone_budget is not None:
            self._alone(caller)
        elif caller.error is not None:
            raise caller.error

    def _close(self, key: str, window: _Window) -> None:
        """No caller joins ``window`` any more; its leader sends at once (lock held)."""
        if self._open.get(key) is window:
            del self._open[key]
        window.full.set()

    def _alone(self, caller: _Caller) -> None:
        budget = caller.alone_budget or 0.0
        if budget <= 0:
            raise self._not_taken(
                "not sent: refusals of other events in its batch used the send's time budget"
            )
        self._deliver(
            caller.request,
            ga4_event_ids(caller.request, caller.event_id),
            budget,
            {"event_id": caller.event_id},
        )

    def _lead(self, callers: list[_Caller]) -> None:
        """Settle every caller's outcome, then wake them all (whatever happens here)."""
        try:
            self._settle(callers)
        except BaseException as exc:
            for caller in callers:
                if caller.error is None and caller.alone_budget is None:
                    caller.error = Ga4OutcomeUnknown(
                        f"the batch failed unexpectedly; it may have been taken: {exc!r}"
                    )
            raise
        finally:
            for caller in callers:
                caller.done.set()

    def _settle(self, callers: list[_Caller]) -> None:
        started = self._clock()
        remaining = callers
        for _ in range(MAX_ROUNDS):
            budget = self._budget - (self._clock() - started)
            if len(remaining) == 1 or budget <= 0:
                break
            request, spans = merged_request([caller.request for caller in remaining])
            ids = [
                event_id
                for caller in remaining
                for event_id in ga4_event_ids(caller.request, caller.event_id)
            ]
            fields = {"event_ids": ids[:20], "batch_events": len(request["events"])}
            try:
                self._deliver(request, ids, budget, fields)
            except PermanentError as refusal:
                refused = self._refuse(refusal, remaining, spans)
                if not refused:
                    break
                remaining = [caller for caller in remaining if caller not in refused]
                log.info(
                    "batch refused for some of its events; the rest re-sent",
                    extra={
                        "event": "data_manager_batch_refused",
                        "reason": refusal.reason,
                        "refused": len(refused),
                        "resent": len(remaining),
                    },
                )
                if not remaining:
                    return
                continue
            except TransientError as error:
                for caller in remaining:
                    caller.error = _copy(error)
                return
            return
        budget = self._budget - (self._clock() - started)
        for caller in remaining:
            caller.alone_budget = budget

    def _refuse(
        self, refusal: PermanentError, callers: list[_Caller], spans: list[range]
    ) -> list[_Caller]:
        """Give the callers whose events the refusal names their own refusal; those."""
        detail, violations = _violations(refusal)
        named: dict[int, list[dict[str, str]]] = {}
        for violation in violations:
            match = _EVENT_PATH.match(violation.get("field", ""))
            if match is None:
                continue
            index = int(match[1])
            for position, span in enumerate(spans):
                if index in span:
                    named.setdefault(position, []).append(violation)
        refused = []
        for position, own in named.items():
            callers[position].error = _own_refusal(refusal, detail, own, spans[position])
            refused.append(callers[position])
        return refused
