"""The exactly-once ledger: which enriched events GA4 has (or may have) received.

One Firestore document per (measurement id, ``event_id``) in ``forwarded``, id = SHA-256 hex
of both, with ``state`` ``sending`` (a delivery holds the claim), ``sent`` (GA4 answered
2xx) or ``uncertain`` (the request may have reached GA4 but no answer came; treated like
``sent``), and ``expire_at`` 8 days ahead (Pub/Sub keeps a message at most 7 days, so no
redelivery can outlive its document).

Protocol, per delivery:
1. ``claim``: ``create`` the document as ``sending`` (fails if it exists: 1 RPC). If it
   exists, read it (1 RPC): ``sent`` or ``uncertain`` -> duplicate, skip; ``sending``
   whose ``claimed_at`` is younger than the lease -> another delivery is in flight,
   ``TransientError`` so Pub/Sub retries later; older than the lease -> that delivery
   died, take the claim over with an ``update_time`` precondition (1 RPC) so only one
   taker wins.
2. while the delivery holds the claim, ``renew_every_seconds`` after the claim (or the last
   renewal) a background thread moves ``claimed_at`` to now (1 RPC, same precondition):
   a live delivery keeps its claim however long its send takes, so the lease only has to
   outlast a renewal interval plus a stall, not the longest send.
3. send to GA4; on success ``mark_sent``, on an unknown outcome ``mark_uncertain`` (1 RPC
   each); on a failure GA4 certainly did not take, ``release`` (delete, 1 RPC) so the next
   delivery sends at once. Each first stops the claim's renewal.

Why renew rather than a lease as long as the longest send (2 x 28 s before): a crashed
delivery's claim blocks its event, and with it the client's ordering key, for the lease;
with Pub/Sub's backoff (10, 20, 40 s...) a 56 s lease was taken over by the fourth
attempt, 70 s after the crash. A 20 s lease renewed every 4 s is taken over by the third,
30 s after it, and a send that lasts more than 4 s (GA4 slow or retrying) pays one write
per 4 s. A delivery stalled longer than lease minus interval (16 s) without renewing may
be taken over while alive; its own mark is then refused (``claim_lost``) and the event can
reach GA4 twice.

Invariants: every write after the claim carries the claim's latest ``update_time`` as a
precondition, so a delivery that lost its claim (taken over after the lease) changes
nothing, and no write re-creates a document (an ``update`` of a missing document fails),
so every document keeps the ``expire_at`` its claim wrote.

Common case: 2 RPCs (create + mark). The window left open: GA4 accepted the request but the
ledger never learned it because the instance died between GA4's answer and the mark;
after the lease a redelivery takes the claim over and sends again (logged with
``taken_over``). No protocol can close it, because GA4 takes no idempotency key. A lost
answer (read timeout) is no longer in it: it is marked ``uncertain`` and never resent.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.adapters.firestore.errors import DocumentExists, translated
from shared.errors import ConcurrentUpdate, TransientError
from shared.logs import get_logger
from shared.ports import Claim, ClaimOutcome

__all__ = [
    "CLAIM_LEASE_MICROS",
    "CLAIM_RENEW_SECONDS",
    "DELIVERED_STATES",
    "LEDGER_TTL_MICROS",
    "FirestoreForwardLedger",
    "ledger_key",
]

log = get_logger("forward_ledger")

LEDGER_TTL_MICROS = 8 * 86_400 * 1_000_000
DELIVERED_STATES = frozenset({"sent", "uncertain"})
"""States after which the event is never sent again."""
CLAIM_RENEW_SECONDS = 4.0
CLAIM_LEASE_MICROS = 20_000_000
"""A ``sending`` claim not renewed for this long belongs to a delivery that died."""
CLAIM_MAX_HOLD_MICROS = 600_000_000
"""Renewal stops after this long whatever happens: no delivery outlives the function's
timeout (at most the ack deadline, at most 600 s), so a claim neither marked nor released
(an unexpected error) lapses like a crashed delivery's instead of blocking its event."""


def ledger_key(measurement_id: str, event_id: str) -> str:
    """Document id: a hash, because event ids may hold ``/`` and are caller-chosen."""
    return hashlib.sha256(f"{measurement_id}\n{event_id}".encode()).hexdigest()


def _moment(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def _micros(moment: Any) -> int | None:
    if isinstance(moment, datetime):
        return int(moment.timestamp() * 1_000_000)
    return None


@dataclass
class _Held:
    """A claim this instance holds: its latest ``update_time`` and when it was renewed."""

    token: Any
    renewed_micros: int
    lock: threading.Lock
    held_since_micros: int
    done: bool = False


class FirestoreForwardLedger:
    """``ForwardLedger`` over a ``google.cloud.firestore.Client``.

    ``renew_every_seconds`` (with ``clock``) turns on claim renewal (see the module
    docstring); ``lease_micros`` must then exceed it by more than any stall a live
    delivery may suffer. Without it a claim is never renewed and the lease must outlast
    the longest send plus the mark.
    """

    def __init__(
        self,
        client: Any,
        collection: str,
        lease_micros: int,
        *,
        renew_every_seconds: float | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if renew_every_seconds is not None and (
            clock is None or renew_every_seconds * 1_000_000 >= lease_micros
        ):
            raise ValueError("claim renewal needs a clock and an interval below the lease")
        self._client = client
        self._collection = collection
        self._lease_micros = lease_micros
        self._renew_micros = int((renew_every_seconds or 0) * 1_000_000)
        self._clock: Callable[[], int] = clock or (lambda: 0)
        self._held: dict[str, _Held] = {}
        self._held_lock = threading.Lock()
        self._renewer: threading.Thread | None = None

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
            return self._hold(Claim(key, ClaimOutcome.SEND, token=result.update_time), now_micros)
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
        return self._hold(self._take_over(document, key, snapshot, fields), now_micros)

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
        option = self._client.write_option(last_update_time=self._let_go(claim))
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
        option = self._client.write_option(last_update_time=self._let_go(claim))
        try:
            with translated("release claim"):
                self._document(claim.key).delete(option=option)
        except ConcurrentUpdate:
            log.info("claim already taken over", extra={"event": "claim_lost", "key": claim.key})

    # ------------------------------------------------------------------ renewal

    def _hold(self, claim: Claim, now_micros: int) -> Claim:
        """Start renewing a claim this delivery now holds (when renewal is on)."""
        if not self._renew_micros:
            return claim
        with self._held_lock:
            self._held[claim.key] = _Held(claim.token, now_micros, threading.Lock(), now_micros)
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(
                    target=self._renew_forever, name="ledger-claim-renewal", daemon=True
                )
                self._renewer.start()
        return claim

    def _let_go(self, claim: Claim) -> Any:
        """Stop renewing ``claim``; its latest ``update_time`` (waits for a renewal in
        flight, so the precondition of the write that follows is the current one)."""
        with self._held_lock:
            held = self._held.pop(claim.key, None)
        if held is None:
            return claim.token
        with held.lock:
            held.done = True
            return held.token

    def _renew_forever(self) -> None:
        """Renew due claims until none is held (``_hold`` starts the thread again)."""
        pause = min(1.0, self._renew_micros / 4_000_000)
        idle = threading.Event()
        while True:
            idle.wait(pause)
            with self._held_lock:
                if not self._held:
                    self._renewer = None
                    return
                due = [
                    (key, held)
                    for key, held in self._held.items()
                    if self._clock() - held.renewed_micros >= self._renew_micros
                ]
            for key, held in due:
                self._renew(key, held)

    def _renew(self, key: str, held: _Held) -> None:
        with held.lock:
            now = self._clock()
            if now - held.held_since_micros > CLAIM_MAX_HOLD_MICROS:
                held.done = True
                with self._held_lock:
                    if self._held.get(key) is held:
                        del self._held[key]
            if held.done:
                return
            option = self._client.write_option(last_update_time=held.token)
            try:
                with translated("renew claim"):
                    result = self._document(key).update({"claimed_at": _moment(now)}, option=option)
            except ConcurrentUpdate:
                held.done = True
                log.warning(
                    "claim taken over while held", extra={"event": "claim_lost", "key": key}
                )
                return
            except TransientError as error:
                log.info(
                    "claim renewal failed; retried",
                    extra={"event": "claim_renew_failed", "key": key, "error": str(error)},
                )
                return
            held.token, held.renewed_micros = result.update_time, now
