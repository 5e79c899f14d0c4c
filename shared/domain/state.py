"""A client's state: identity, session windows per stream, and remembered answers.

Invariant: the state of a client is bounded whatever its history: identity marks
(``marks_kept``), linked users (20), session windows per stream (``windows_kept``) and
processed event ids (``processed_kept``) are all capped, so its stored size and write cost
stay constant once a client's history exceeds those windows. How it is stored is the
adapter's business (``shared.adapters.firestore.codec``); nothing here knows a document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from shared.domain.identity import Identity, IdentitySource
from shared.domain.sessions import StreamSessions

__all__ = [
    "RESOLVED_FIELDS",
    "ClientState",
    "ProcessedEvent",
    "Resolved",
    "expires_at",
]


@dataclass(frozen=True)
class Resolved:
    """The state-dependent part of an enriched event's ``resolved`` object."""

    client_id: str
    user_id: str | None
    identity_source: IdentitySource
    session_id: int | None
    session_number: int | None
    previous_session_id: int | None
    event_index: int | None
    first_event_id: str | None
    session_start_micros: int | None
    is_new_session: bool
    late: bool
    link: Mapping[str, str] | None = None
    new_link: bool = False
    """This event linked the client to its user for the first time (kept so a redelivery
    can publish the identity link again if the first publish failed)."""
    traffic_source: Mapping[str, str | None] | None = None
    """The session's source / medium / campaign (``shared.domain.traffic``)."""
    earliest_in_session: bool = False
    """The event is its session's earliest so far: GA4 needs the source in force from it."""


RESOLVED_FIELDS = tuple(f.name for f in fields(Resolved))
"""The order of ``ProcessedEvent.answer``."""


@dataclass(frozen=True)
class ProcessedEvent:
    """One remembered event id and the answer it got, kept as the plain field values of
    ``Resolved`` (in declaration order): a ``Resolved`` is built only for a redelivery,
    which is rare, so loading and saving a client never pays for a hundred of them."""

    event_id: str
    answer: tuple[Any, ...]

    @classmethod
    def of(cls, event_id: str, resolved: Resolved) -> ProcessedEvent:
        return cls(event_id, tuple(getattr(resolved, name) for name in RESOLVED_FIELDS))

    @property
    def resolved(self) -> Resolved:
        data = dict(zip(RESOLVED_FIELDS, self.answer, strict=True))
        data["link"] = dict(data["link"]) if data["link"] else None
        return Resolved(**data)


@dataclass(frozen=True)
class ClientState:
    client_id: str
    first_seen_micros: int
    identity: Identity = field(default_factory=Identity)
    streams: tuple[StreamSessions, ...] = ()
    processed: tuple[ProcessedEvent, ...] = ()
    """Most recent last."""
    events: int = 0
    alias_of: str | None = None
    """Set when this client was linked to a canonical client on another domain."""

    def stream(self, name: str) -> StreamSessions:
        for stream in self.streams:
            if stream.stream == name:
                return stream
        return StreamSessions(stream=name)

    def processed_result(self, event_id: str) -> Resolved | None:
        for record in reversed(self.processed):
            if record.event_id == event_id:
                return record.resolved
        return None


def expires_at(now_micros: int, ttl_micros: int) -> datetime:
    """When stored state written at ``now_micros`` lapses (the ``expire_at`` TTL field)."""
    return datetime.fromtimestamp((now_micros + ttl_micros) / 1_000_000, tz=UTC)
