"""The forward function's service: one enriched event to GA4, exactly once.

Order, and why: decode, build and validate first (pure; a bad event is dead-lettered
before any state exists), then ask the ledger whether GA4 already has the event, send, and
record it (one write, after the send). With ``NoLedger`` (``FORWARD_LEDGER=none``) the
ledger is skipped: at least once, every redelivery of a sent event is sent again.

- Each stream goes through the API its destination names (``DestinationPlan``: the
  Measurement Protocol or the Data Manager API); ledger, retries, dead letters and the
  unknown-outcome policy mean the same for both, and every log line names the
  ``destination``. A Data Manager request is mapped and checked here too
  (``shared.domain.datamanager.refusals``), so an event the API would refuse is
  dead-lettered with the API's own reason before any request; that path has no
  ``validate_first`` round trip.
- Permanent problems (not an enriched event, older than GA4's 72-hour backdating limit,
  invalid for GA4 after repair, rejected by GA4 with a 4xx, refused by the Data Manager
  API) are dead-lettered with their reason and acknowledged.
- Failures GA4 certainly did not take (no connection, 5xx/429 after the bounded retries)
  and Firestore outages are raised so Pub/Sub redelivers; nothing was written, so the
  redelivery sends at once.
- An unknown outcome (``Ga4OutcomeUnknown``: the request may have reached GA4, no answer
  came) follows ``unknown_outcome``. ``assume_sent`` (default): the ledger records it
  ``uncertain``, which later deliveries treat like ``sent``, ``ga4_outcome_unknown`` is
  logged at WARNING and the message acknowledged, so a slow GA4 never gets the event
  twice (the cost: an event GA4 really did not take is lost, and counted in that log).
  ``resend``: nothing is recorded, ``ga4_outcome_unknown_resent`` is logged and the error raised,
  so Pub/Sub redelivers after its backoff and the event is sent again (the cost: a
  duplicate whenever GA4 had taken it).
- Once GA4 has answered 2xx (or is assumed to have taken the request) the message is
  always acknowledged: failing to record it is logged, never raised, because a
  redelivery is exactly what could duplicate the event. A record that finds the entry
  already there means another copy of the event was sent concurrently: ``duplicate_risk``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.domain.datamanager import (
    DATA_MANAGER,
    DestinationPlan,
    dead_letter_reason,
    ingest_request,
    refusal_detail,
    refusals,
)
from shared.domain.measurement import MeasurementRequest, PayloadRules, build_request
from shared.domain.messages import (
    PubSubMessage,
    dead_letter_message,
    json_bytes,
    message_from_cloud_event,
)
from shared.domain.validation import MAX_BACKDATE_MICROS, Message, validate
from shared.errors import (
    InvalidEvent,
    PermanentError,
    SettingsError,
    TransientError,
)
from shared.logs import get_logger
from shared.ports import ForwardLedger, Ga4OutcomeUnknown, Ga4Sender, Publisher
from shared.retry import RetryPolicy

__all__ = [
    "ASSUME_SENT",
    "RESEND",
    "UNKNOWN_OUTCOME_POLICIES",
    "ForwardOutcome",
    "ForwardRuntime",
    "NoLedger",
]

ASSUME_SENT = "assume_sent"
RESEND = "resend"
UNKNOWN_OUTCOME_POLICIES = frozenset({ASSUME_SENT, RESEND})

log = get_logger("forward")


@dataclass(frozen=True)
class ForwardOutcome:
    """What happened to one message (for tests and the local pipeline; also logged)."""

    status: str
    """``forwarded``, ``uncertain`` (no answer from GA4, assumed taken), ``duplicate`` or
    ``dead_lettered``."""
    reason: str | None = None
    measurement_id: str | None = None


class NoLedger:
    """``ForwardLedger`` that remembers nothing (``FORWARD_LEDGER=none``): at least once.

    Every delivery sends, so each redelivery of an event GA4 already took (Pub/Sub's own
    duplicates, a resolver's redelivery republishing it, a crashed delivery) is counted
    twice by GA4; no Firestore RPC is spent.
    """

    def delivered(self, measurement_id: str, event_id: str) -> str | None:
        return None

    def record(self, measurement_id: str, event_id: str, state: str, now_micros: int) -> bool:
        return True


def _messages_json(messages: Sequence[Message]) -> str:
    return json.dumps([message.as_ga4() for message in messages], ensure_ascii=False)


class ForwardRuntime:
    """The forward use case: one enriched event to GA4, at most once per ``event_id``."""

    def __init__(
        self,
        *,
        rules: PayloadRules,
        sender: Ga4Sender,
        ledger: ForwardLedger,
        publisher: Publisher,
        dead_letter_topic: str,
        validate_first: bool = False,
        unknown_outcome: str = ASSUME_SENT,
        clock: Callable[[], int],
        sleep: Callable[[float], None] | None = None,
        destinations: DestinationPlan | None = None,
    ) -> None:
        if unknown_outcome not in UNKNOWN_OUTCOME_POLICIES:
            allowed = ", ".join(sorted(UNKNOWN_OUTCOME_POLICIES))
            raise SettingsError(f"unknown_outcome must be one of {allowed}")
        self._unknown_outcome = unknown_outcome
        self._rules = rules
        self._sender = sender
        self._ledger = ledger
        self._publisher = publisher
        self._dead_letter_topic = dead_letter_topic
        self._validate_first = validate_first
        self._clock = clock
        self._ledger_retry = RetryPolicy(attempts=3, budget_seconds=5.0, logger=log, sleep=sleep)
        self._destinations = destinations or DestinationPlan()

    def handle(self, data: Any, event_id: str | None = None) -> ForwardOutcome:
        """Process one CloudEvent's data; raises only ``TransientError``."""
        try:
            message = message_from_cloud_event(data, event_id)
        except InvalidEvent as error:
            return self._dead_letter(error, PubSubMessage(json_bytes(data), event_id or "", None))
        try:
            return self._forward(message)
        except PermanentError as error:
            return self._dead_letter(error, message)

    def _forward(self, message: PubSubMessage) -> ForwardOutcome:
        request = build_request(message.json_object(), self._rules)
        now = self._clock()
        age_hours = (now - request.timestamp_micros) / 3_600_000_000
        if now - request.timestamp_micros > MAX_BACKDATE_MICROS:
            raise PermanentError(
                "too_old_for_ga4",
                f"event time is {age_hours:.1f} h ago; GA4 backdates 72 h at most",
            )
        body = self._checked_body(request, now)
        found = self._ledger.delivered(request.measurement_id, request.event_id)
        if found is not None:
            self._log(
                "duplicate_suppressed",
                request,
                "duplicate skipped: GA4 already has it",
                ledger_state=found,
            )
            return ForwardOutcome("duplicate", measurement_id=request.measurement_id)
        try:
            self._sender.send(request.measurement_id, body, event_id=request.event_id)
        except Ga4OutcomeUnknown as error:
            if self._unknown_outcome == RESEND:
                self._log(
                    "ga4_outcome_unknown_resent",
                    request,
                    "no answer from GA4; redelivered",
                    level=logging.WARNING,
                    error=str(error),
                )
                raise
            self._log(
                "ga4_outcome_unknown",
                request,
                "no answer from GA4; assumed taken",
                level=logging.WARNING,
                error=str(error),
            )
            self._record("uncertain", request)
            return ForwardOutcome("uncertain", measurement_id=request.measurement_id)
        self._record("sent", request)
        self._log("forwarded", request, "forwarded to GA4")
        return ForwardOutcome("forwarded", measurement_id=request.measurement_id)

    def _checked_body(self, request: MeasurementRequest, now: int) -> bytes:
        """The repaired body as the stream's destination takes it (the MP body, or the Data
        Manager request mapped from it); ``ga4_invalid`` when GA4 would drop it."""
        validation = validate(request.body, now_micros=now)
        if not validation.sendable:
            raise PermanentError("ga4_invalid", _messages_json(validation.fatal_messages))
        if validation.messages:
            self._log(
                "ga4_repaired",
                request,
                "payload repaired for GA4",
                messages=[message.as_ga4() for message in validation.messages],
            )
        if self._destinations.destination_of(request.measurement_id) == DATA_MANAGER:
            return self._data_manager_body(request, validation.body, now)
        body = validation.encoded
        if self._validate_first:
            remote = self._sender.validate_remote(request.measurement_id, body)
            if remote:
                raise PermanentError("ga4_invalid", json.dumps(remote, ensure_ascii=False))
        return body

    def _data_manager_body(
        self, request: MeasurementRequest, body: dict[str, Any], now: int
    ) -> bytes:
        """The ``IngestEventsRequest`` the Data Manager sender sends as it is, mapped once
        here; what the API would refuse is dead-lettered with the API's reason instead."""
        destination = self._destinations.data_manager_for(request.measurement_id)
        ingest = ingest_request(body, destination)
        refused = refusals(ingest, now)
        if refused:
            raise PermanentError(dead_letter_reason(refused[0].reason), refusal_detail(refused))
        return json_bytes(ingest)

    def _record(self, state: str, request: MeasurementRequest) -> None:
        """Create the ledger entry (``sent`` or ``uncertain``) with a few short retries; a
        ``TransientError`` is logged, never raised, because the caller acknowledges."""
        attempts = 0

        def create() -> bool:
            nonlocal attempts
            attempts += 1
            return self._ledger.record(
                request.measurement_id, request.event_id, state, self._clock()
            )

        try:
            created = self._ledger_retry.run(create)
        except TransientError as error:
            self._log(
                "ledger_mark_failed",
                request,
                "sent, but not recorded; acknowledged anyway",
                error=str(error),
                level=logging.ERROR,
            )
            return
        if created:
            return
        if attempts > 1:
            self._log(
                "ledger_write_retried",
                request,
                "ledger entry found after a failed write (most likely that write's own)",
                state=state,
            )
            return
        self._log(
            "duplicate_risk",
            request,
            "another delivery recorded this event first: GA4 may have it twice",
            level=logging.WARNING,
            state=state,
        )

    def _dead_letter(self, error: PermanentError, message: PubSubMessage) -> ForwardOutcome:
        self._publisher.publish_all(
            [dead_letter_message(self._dead_letter_topic, error, message, "forward", self._clock())]
        )
        log.warning(
            "dead-lettered",
            extra={
                "event": "dead_lettered",
                "reason": error.reason,
                "detail": error.detail[:2000],
                "message_id": message.message_id,
            },
        )
        return ForwardOutcome("dead_lettered", reason=error.reason)

    def _log(
        self,
        event: str,
        request: MeasurementRequest,
        text: str,
        level: int = logging.INFO,
        **fields: Any,
    ) -> None:
        extra = {
            "event": event,
            "event_id": request.event_id,
            "client_id": request.client_id,
            "measurement_id": request.measurement_id,
            "destination": self._destinations.destination_of(request.measurement_id),
            **fields,
        }
        log.log(level, text, extra=extra)
