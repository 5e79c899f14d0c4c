"""The forward function's service: one enriched event to GA4, exactly once.

Order, and why: decode, build and validate first (pure; a bad event is dead-lettered
before any state exists), then claim the event in the ledger, send, and mark it sent.

- Permanent problems (not an enriched event, older than GA4's 72-hour backdating limit,
  invalid for GA4 after repair, rejected by GA4 with a 4xx) are dead-lettered with their
  reason and acknowledged.
- Transient ones (GA4 5xx/429/network after the bounded retries, Firestore outages, another
  delivery of the same event in flight) are raised so Pub/Sub redelivers; a failed send
  releases its claim first, so the redelivery sends at once.
- Once GA4 has answered 2xx the message is always acknowledged: failing to record ``sent``
  is logged, never raised, because a redelivery is exactly what could duplicate the event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.domain.measurement import MeasurementRequest, PayloadRules, build_request
from shared.domain.messages import (
    PubSubMessage,
    dead_letter_message,
    json_bytes,
    message_from_cloud_event,
)
from shared.domain.validation import MAX_BACKDATE_MICROS, Message, encode_body, validate
from shared.errors import InvalidEvent, PermanentError, StitchError, TransientError
from shared.logs import get_logger
from shared.ports import Claim, ClaimOutcome, ForwardLedger, Ga4Sender, Publisher
from shared.retry import transient_retry

__all__ = ["ForwardOutcome", "ForwardRuntime"]

log = get_logger("forward")


@dataclass(frozen=True)
class ForwardOutcome:
    """What happened to one message (for tests and the local pipeline; also logged)."""

    status: str
    """``forwarded``, ``duplicate`` or ``dead_lettered``."""
    reason: str | None = None
    measurement_id: str | None = None


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
        clock: Callable[[], int],
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._rules = rules
        self._sender = sender
        self._ledger = ledger
        self._publisher = publisher
        self._dead_letter_topic = dead_letter_topic
        self._validate_first = validate_first
        self._clock = clock
        self._sleep = sleep

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
        claim = self._ledger.claim(request.measurement_id, request.event_id, now)
        if claim.outcome is ClaimOutcome.ALREADY_SENT:
            self._log("duplicate_suppressed", request, "duplicate skipped: GA4 already has it")
            return ForwardOutcome("duplicate", measurement_id=request.measurement_id)
        try:
            self._sender.send(request.measurement_id, body, event_id=request.event_id)
        except StitchError:
            self._release(claim)
            raise
        self._mark_sent(claim, request)
        self._log("forwarded", request, "forwarded to GA4", taken_over=claim.taken_over)
        return ForwardOutcome("forwarded", measurement_id=request.measurement_id)

    def _checked_body(self, request: MeasurementRequest, now: int) -> bytes:
        """The repaired body, encoded; ``ga4_invalid`` when GA4 would drop it."""
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
        body = encode_body(validation.body)
        if self._validate_first:
            remote = self._sender.validate_remote(request.measurement_id, body)
            if remote:
                raise PermanentError("ga4_invalid", json.dumps(remote, ensure_ascii=False))
        return body

    def _release(self, claim: Claim) -> None:
        try:
            self._ledger.release(claim)
        except TransientError as error:
            log.warning(
                "could not release the claim; it lapses after the lease",
                extra={"event": "claim_release_failed", "error": str(error)},
            )

    def _mark_sent(self, claim: Claim, request: MeasurementRequest) -> None:
        retrying = transient_retry(attempts=3, budget_seconds=5.0, logger=log, sleep=self._sleep)
        try:
            retrying(self._ledger.mark_sent, claim, self._clock())
        except TransientError as error:
            self._log(
                "ledger_mark_failed",
                request,
                "sent, but not recorded as sent; acknowledged anyway",
                error=str(error),
                level=logging.ERROR,
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

    @staticmethod
    def _log(
        event: str, request: MeasurementRequest, text: str, level: int = logging.INFO, **fields: Any
    ) -> None:
        extra = {
            "event": event,
            "event_id": request.event_id,
            "client_id": request.client_id,
            "measurement_id": request.measurement_id,
            **fields,
        }
        log.log(level, text, extra=extra)
