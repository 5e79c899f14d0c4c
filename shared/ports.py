"""The interfaces the services need, and nothing else: each adapter implements one.

Services depend on these and on the domain, never on an adapter, so a service test runs
on the hand-written fakes of ``tests/fakes.py`` and the same service runs on Firestore,
Pub/Sub and GA4 in production (``shared.bootstrap`` chooses). Every method raises only
errors of ``shared.errors``: adapters translate their library's errors at the boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.domain.crossdomain.bridging import BridgeCandidate
from shared.domain.messages import OutgoingMessage
from shared.domain.state import ClientState
from shared.errors import TransientError

__all__ = [
    "DELIVERED_STATES",
    "ClientRecord",
    "ClientStateStore",
    "ForwardLedger",
    "Ga4OutcomeUnknown",
    "Ga4Sender",
    "LinkEvidenceStore",
    "Publisher",
    "Snapshot",
    "StateAdmin",
    "UserLink",
    "UserRecord",
]


@dataclass(frozen=True)
class Snapshot:
    """A client's state as read, with the version a write must still match."""

    state: ClientState | None
    version: Any
    """The store's version token (Firestore ``update_time``; None: nothing stored)."""


@dataclass(frozen=True)
class UserLink:
    user_id: str
    client_id: str
    linked_at_micros: int


class ClientStateStore(Protocol):
    def load(self, client_id: str) -> Snapshot:
        """The client's state and version; ``UnreadableState`` if it cannot be decoded."""

    def save(
        self,
        snapshot: Snapshot,
        state: ClientState,
        links: Sequence[UserLink],
        expires: datetime,
        aliases: Sequence[tuple[Snapshot, ClientState]] = (),
    ) -> None:
        """Write ``state`` if the document is still at ``snapshot.version``, else raise
        ``ConcurrentUpdate`` (after dropping any cached copy, so the next ``load`` reads
        the store); links update the users' documents and ``aliases`` (a second domain's
        client now pointing at this one) their own, all in the same commit."""


@dataclass(frozen=True)
class ClientRecord:
    """What is stored for one client, for inspection."""

    path: str
    state: ClientState
    expire_at: datetime | None


@dataclass(frozen=True)
class UserRecord:
    """What is stored for one user, for inspection and erasure."""

    path: str
    client_ids: tuple[str, ...] = ()
    last_linked_at: datetime | None = None
    expire_at: datetime | None = None


class StateAdmin(Protocol):
    """Operator access to stored state: reports and GDPR erasure (never on the hot path)."""

    def client_path(self, client_id: str) -> str: ...

    def user_path(self, user_id: str) -> str: ...

    def client_record(self, client_id: str) -> ClientRecord | None: ...

    def user_record(self, user_id: str) -> UserRecord | None: ...

    def aliases_of(self, client_id: str) -> list[str]:
        """Clients (of other domains) whose state points at ``client_id``."""

    def delete_client(self, client_id: str) -> bool:
        """Delete the client's state; whether there was any."""

    def delete_user(self, user_id: str) -> bool:
        """Delete the user's document; whether there was one."""


class LinkEvidenceStore(Protocol):
    def use_token(self, token_id: str, event_id: str, expires_at_seconds: int) -> bool:
        """Record the token's single use by ``event_id``; False if another event used it."""

    def candidates(self, key: str) -> Sequence[BridgeCandidate]:
        """Recent bridge candidates with this fingerprint key."""

    def remember(self, key: str, candidate: BridgeCandidate, expires: datetime) -> None:
        """Keep ``candidate`` briefly for probabilistic bridging."""


DELIVERED_STATES = frozenset({"sent", "uncertain"})
"""Ledger states after which an event is never sent again."""


class ForwardLedger(Protocol):
    """Which events GA4 has (or may have) received; one entry per (measurement id, event id).

    States: ``sent`` (GA4 answered 2xx) and ``uncertain`` (the request may have reached GA4
    but its answer never came; treated like ``sent``). An entry is written once, after the
    send, and never changed; it carries its expiry. Nothing is written before the send:
    two deliveries of one event never run at once (see ``docs/forwarding.md``, "Exactly
    once to GA4"), so there is nothing to claim.
    """

    def delivered(self, measurement_id: str, event_id: str) -> str | None:
        """``sent`` or ``uncertain`` when the ledger has the event, else None;
        ``TransientError`` when the ledger cannot be read."""

    def record(self, measurement_id: str, event_id: str, state: str, now_micros: int) -> bool:
        """Create the event's entry in ``state`` (``sent`` or ``uncertain``); False if it
        already existed (another delivery recorded it first). ``TransientError`` on
        failure."""


class Publisher(Protocol):
    def publish_all(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish every message, or raise ``TransientError``."""


class Ga4OutcomeUnknown(TransientError):
    """The request may have reached GA4, but no answer came (read timeout, connection reset
    or closed after the request was written).

    The sender never retries it itself: a second request could count the event twice,
    because the Measurement Protocol takes no idempotency key. A ``TransientError``, so a
    caller that does not know this type retries later (a possible duplicate, never a
    silent loss); the forward service decides by its unknown-outcome policy instead.
    """


class Ga4Sender(Protocol):
    """What the forwarder needs from GA4."""

    def send(self, measurement_id: str, body: bytes, event_id: str | None = None) -> None:
        """Deliver one request body, or raise ``PermanentError`` (GA4 refused it),
        ``Ga4OutcomeUnknown`` (it may have been taken) or another ``TransientError`` (it
        certainly was not taken); ``event_id`` names the event the body carries (sent as a
        header)."""

    def validate_remote(self, measurement_id: str, body: bytes) -> list[dict[str, Any]]:
        """GA4's ``validationMessages`` for the body (empty when valid)."""
