"""The exactly-once ledger: which enriched events GA4 has already received.

One Firestore document per (measurement id, ``event_id``) in ``forwarded``, id = SHA-256 hex
of both, with ``state`` ``sending`` (a delivery holds the claim) or ``sent`` (GA4 answered
2xx), and ``expire_at`` 8 days ahead (Pub/Sub keeps a message at most 7 days, so no
redelivery can outlive its document).

Protocol, per delivery:
1. ``claim``: ``create`` the document as ``sending`` (fails if it exists: 1 RPC). If it
   exists, read it (1 RPC): ``sent`` -> duplicate, skip; ``sending`` younger than the lease
   -> another delivery is in flight, ``TransientError`` so Pub/Sub retries later;
   ``sending`` older than the lease -> that delivery died, take the claim over with an
   ``update_time`` precondition (1 RPC) so only one taker wins.
2. send to GA4; on success ``mark_sent`` (1 RPC); on failure ``release`` (delete with the
   claim's ``update_time`` precondition, 1 RPC) so the next delivery sends at once.

Common case: 2 RPCs (create + mark). The one window left open: GA4 accepted the request but
the ledger never says ``sent`` (crash, or the answer lost); after the lease a redelivery
sends again. No protocol can close it, because GA4 takes no idempotency key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from shared.errors import TransientError
from shared.logs import get_logger

log = get_logger("forward_ledger")

LEDGER_TTL_MICROS = 8 * 86_400 * 1_000_000


def ledger_key(measurement_id: str, event_id: str) -> str:
    """Document id: a hash, because event ids may hold ``/`` and are caller-chosen."""
    return hashlib.sha256(f"{measurement_id}\n{event_id}".encode()).hexdigest()


class ClaimOutcome(Enum):
    SEND = "send"
    """This delivery holds the claim and must send."""
    ALREADY_SENT = "already_sent"
    """GA4 already has the event: acknowledge without sending."""


@dataclass(frozen=True)
class Claim:
    key: str
    outcome: ClaimOutcome
    token: Any = None
    """The adapter's proof of ownership (Firestore: the claim's update time)."""
    taken_over: bool = False


class ForwardLedger(Protocol):
    def claim(self, measurement_id: str, event_id: str, now_micros: int) -> Claim:
        """Claim the event for sending, or say it was sent; ``TransientError`` if in flight."""

    def mark_sent(self, claim: Claim, now_micros: int) -> None:
        """Record that GA4 accepted the event; ``TransientError`` on failure."""

    def release(self, claim: Claim) -> None:
        """Give the claim up after a failed send; ``TransientError`` on failure."""


def _moment(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def _micros(moment: Any) -> int | None:
    if isinstance(moment, datetime):
        return int(moment.timestamp() * 1_000_000)
    return None


class FirestoreForwardLedger:
    """``ForwardLedger`` over a ``google.cloud.firestore.Client``."""

    def __init__(self, client: Any, collection: str, lease_micros: int) -> None:
        self._client = client
        self._collection = collection
        self._lease_micros = lease_micros

    def claim(self, measurement_id: str, event_id: str, now_micros: int) -> Claim:
        from google.api_core import exceptions as gexc

        key = ledger_key(measurement_id, event_id)
        document = self._client.collection(self._collection).document(key)
        fields = {
            "state": "sending",
            "measurement_id": measurement_id,
            "event_id": event_id,
            "claimed_at": _moment(now_micros),
            "expire_at": _moment(now_micros + LEDGER_TTL_MICROS),
        }
        try:
            result = _call(document.create, fields)
            return Claim(key, ClaimOutcome.SEND, token=result.update_time)
        except gexc.AlreadyExists:
            pass
        snapshot = _call(document.get)
        if not snapshot.exists:
            raise TransientError(f"ledger entry {key} vanished during the claim; retry")
        if snapshot.get("state") == "sent":
            return Claim(key, ClaimOutcome.ALREADY_SENT)
        claimed_at = _micros(snapshot.get("claimed_at")) or 0
        if now_micros - claimed_at < self._lease_micros:
            raise TransientError(f"event {event_id} is being sent by another delivery")
        return self._take_over(document, key, snapshot, fields)

    def _take_over(self, document: Any, key: str, snapshot: Any, fields: dict[str, Any]) -> Claim:
        from google.api_core import exceptions as gexc

        option = self._client.write_option(last_update_time=snapshot.update_time)
        try:
            result = _call(document.update, fields, option=option)
        except gexc.FailedPrecondition:
            raise TransientError(f"ledger entry {key} was taken over by another delivery") from None
        return Claim(key, ClaimOutcome.SEND, token=result.update_time, taken_over=True)

    def mark_sent(self, claim: Claim, now_micros: int) -> None:
        document = self._client.collection(self._collection).document(claim.key)
        _call(document.set, {"state": "sent", "sent_at": _moment(now_micros)}, merge=True)

    def release(self, claim: Claim) -> None:
        from google.api_core import exceptions as gexc

        document = self._client.collection(self._collection).document(claim.key)
        option = self._client.write_option(last_update_time=claim.token)
        try:
            _call(document.delete, option=option)
        except gexc.FailedPrecondition:
            log.info("claim already taken over", extra={"event": "claim_lost", "key": claim.key})


def _call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one Firestore call; outages become ``TransientError``, decisions pass through."""
    from google.api_core import exceptions as gexc

    try:
        return method(*args, **kwargs)
    except (gexc.AlreadyExists, gexc.FailedPrecondition):
        raise
    except gexc.GoogleAPIError as exc:
        raise TransientError(f"Firestore {type(exc).__name__}: {exc}") from exc
