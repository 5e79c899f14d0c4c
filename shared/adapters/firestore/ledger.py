"""The exactly-once ledger: which enriched events GA4 has (or may have) received.

One Firestore document per (measurement id, ``event_id``) in ``forwarded``, id = SHA-256 hex
of both, with ``state`` ``sending`` (a delivery holds the claim), ``sent`` (GA4 answered
2xx) or ``uncertain`` (the request may have reached GA4 but no answer came; treated like
``sent``), and ``expire_at`` 8 days ahead (Pub/Sub keeps a message at most 7 days, so no
redelivery can outlive its document).

Protocol, per delivery:
1. ``claim``: ``create`` the document as ``sending`` (fails if it exists: 1 RPC). If it
   exists, read it (1 RPC): ``sent`` or ``uncertain`` -> duplicate, skip; ``sending``
   younger than the lease -> another delivery is in flight, ``TransientError`` so Pub/Sub
   retries later; ``sending`` older than the lease -> that delivery died, take the claim
   over with an ``update_time`` precondition (1 RPC) so only one taker wins.
2. send to GA4; on success ``mark_sent``, on an unknown outcome ``mark_uncertain`` (1 RPC
   each); on a failure GA4 certainly did not take, ``release`` (delete, 1 RPC) so the next
   delivery sends at once.

Invariants: every write after the claim carries the claim's ``update_time`` as a
precondition, so a delivery that lost its claim (taken over after the lease) changes
nothing, and no write re-creates a document (an ``update`` of a missing document fails),
so every document keeps the ``expire_at`` its claim wrote.

Common case: 2 RPCs (create + mark). The window left open: GA4 accepted the request but the
ledger never learned it because the instance died between GA4's answer and the mark;
after the lease a redelivery sends again. No protocol can close it, because GA4 takes no
idempotency key. A lost answer (read timeout) is no longer in it: it is marked
``uncertain`` and never resent.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from shared.adapters.firestore.errors import DocumentExists, translated
from shared.errors import ConcurrentUpdate, TransientError
from shared.logs import get_logger
from shared.ports import Claim, ClaimOutcome

__all__ = ["DELIVERED_STATES", "LEDGER_TTL_MICROS", "FirestoreForwardLedger", "ledger_key"]

log = get_logger("forward_ledger")

LEDGER_TTL_MICROS = 8 * 86_400 * 1_000_000
DELIVERED_STATES = frozenset({"sent", "uncertain"})
"""States after which the event is never sent again."""


def ledger_key(measurement_id: str, event_id: str) -> str:
    """Document id: a hash, because event ids may hold ``/`` and are caller-chosen."""
    return hashlib.sha256(f"{measurement_id}\n{event_id}".encode()).hexdigest()


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

    def _document(self, key: str) -> Any:
        return self._client.collection(self._collection).document(key)

    def claim(self, measurement_id: str, event_id: str, now_micros: int) -> Claim:
        key = ledger_key(measurement_id, event_id)
        document = self._document(key)
        fields = {
            "state": "sending",
            "measurement_id": measurement_id,
            "event_id": event_id,
            "claimed_at": _moment(now_micros),
            "expire_at": _moment(now_micros + LEDGER_TTL_MICROS),
        }
        try:
            with translated("claim"):
                result = document.create(fields)
            return Claim(key, ClaimOutcome.SEND, token=result.update_time)
        except DocumentExists:
            pass
        with translated("read claim"):
            snapshot = document.get()
        if not snapshot.exists:
            raise TransientError(f"ledger entry {key} vanished during the claim; retry")
        state = snapshot.get("state")
        if state in DELIVERED_STATES:
            return Claim(key, ClaimOutcome.ALREADY_SENT, found_state=state)
        claimed_at = _micros(snapshot.get("claimed_at")) or 0
        if now_micros - claimed_at < self._lease_micros:
            raise TransientError(f"event {event_id} is being sent by another delivery")
        return self._take_over(document, key, snapshot, fields)

    def _take_over(self, document: Any, key: str, snapshot: Any, fields: dict[str, Any]) -> Claim:
        option = self._client.write_option(last_update_time=snapshot.update_time)
        try:
            with translated("take over claim"):
                result = document.update(fields, option=option)
        except ConcurrentUpdate:
            raise TransientError(f"ledger entry {key} was taken over by another delivery") from None
        return Claim(key, ClaimOutcome.SEND, token=result.update_time, taken_over=True)

    def mark_sent(self, claim: Claim, now_micros: int) -> None:
        """``sent``, conditional on the claim this delivery holds: after a takeover (or a
        release) the mark is refused instead of re-creating a document without
        ``expire_at``."""
        self._mark(claim, {"state": "sent", "sent_at": _moment(now_micros)}, "mark sent")

    def mark_uncertain(self, claim: Claim, now_micros: int) -> None:
        """``uncertain``, under the same precondition as ``mark_sent``; ``expire_at`` is
        left as the claim wrote it."""
        self._mark(
            claim, {"state": "uncertain", "uncertain_at": _moment(now_micros)}, "mark uncertain"
        )

    def _mark(self, claim: Claim, fields: dict[str, Any], action: str) -> None:
        option = self._client.write_option(last_update_time=claim.token)
        try:
            with translated(action):
                self._document(claim.key).update(fields, option=option)
        except ConcurrentUpdate:
            log.warning(
                "claim lost before %s",
                action,
                extra={"event": "claim_lost", "key": claim.key, "state": fields["state"]},
            )

    def release(self, claim: Claim) -> None:
        option = self._client.write_option(last_update_time=claim.token)
        try:
            with translated("release claim"):
                self._document(claim.key).delete(option=option)
        except ConcurrentUpdate:
            log.info("claim already taken over", extra={"event": "claim_lost", "key": claim.key})
