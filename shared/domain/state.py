"""A client's stored state, and its Firestore document form.

Invariant: the document of a client is bounded whatever its history: identity marks
(``marks_kept``), linked users (20), session windows per stream (``windows_kept``) and
processed event ids (``processed_kept``) are all capped, so a document's size and write
cost stay constant once a client's history exceeds those windows.

Document form: the few fields an operator looks at (``client_id``, ``alias_of``,
``events``, ``first_seen_micros``) stay top-level and readable; the bounded history is one
``state`` field of zlib-compressed compact JSON. Firestore indexes every leaf of a map,
and the history has about 1,500 leaves, so as maps each commit would write that many
index entries (and send about 7 kB); as one blob it writes one entry and a fraction of
the bytes. ``ga4-stitch inspect`` decodes it. ``to_document`` and ``from_document`` are
exact inverses (checked by a property test).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from shared.domain.identity import Identity, IdentityMark, IdentitySource
from shared.domain.sessions import SessionWindow, StreamSessions

SCHEMA_VERSION = 2


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


_RESOLVED_FIELDS = tuple(f.name for f in fields(Resolved))
_WINDOW_FIELDS = tuple(f.name for f in fields(SessionWindow))


@dataclass(frozen=True)
class ProcessedEvent:
    """One remembered event id and the answer it got, kept as the plain field values of
    ``Resolved`` (in declaration order): a ``Resolved`` is built only for a redelivery,
    which is rare, so loading and saving a client never pays for a hundred of them."""

    event_id: str
    answer: tuple[Any, ...]

    @classmethod
    def of(cls, event_id: str, resolved: Resolved) -> ProcessedEvent:
        return cls(event_id, tuple(getattr(resolved, name) for name in _RESOLVED_FIELDS))

    @property
    def resolved(self) -> Resolved:
        data = dict(zip(_RESOLVED_FIELDS, self.answer, strict=True))
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


def _compact(state: ClientState) -> dict[str, Any]:
    return {
        "m": [[mark.time_micros, mark.user_id] for mark in state.identity.marks],
        "u": list(state.identity.linked_users),
        "s": [
            [
                s.stream,
                s.count,
                s.last_activity_micros,
                [[getattr(w, name) for name in _WINDOW_FIELDS] for w in s.windows],
            ]
            for s in state.streams
        ],
        "p": [[p.event_id, *p.answer] for p in state.processed],
    }


def to_document(state: ClientState) -> dict[str, Any]:
    """The Firestore representation: readable top-level facts plus the compressed history."""
    history = json.dumps(_compact(state), separators=(",", ":"), ensure_ascii=False)
    return {
        "v": SCHEMA_VERSION,
        "client_id": state.client_id,
        "alias_of": state.alias_of,
        "events": state.events,
        "first_seen_micros": state.first_seen_micros,
        "state": zlib.compress(history.encode(), 1),
    }


def from_document(data: Mapping[str, Any]) -> ClientState:
    """Inverse of ``to_document``."""
    history = json.loads(zlib.decompress(data["state"]))
    return ClientState(
        client_id=data["client_id"],
        first_seen_micros=data.get("first_seen_micros", 0),
        events=data.get("events", 0),
        alias_of=data.get("alias_of"),
        identity=Identity(
            marks=tuple(IdentityMark(time, user) for time, user in history["m"]),
            linked_users=tuple(history["u"]),
        ),
        streams=tuple(
            StreamSessions(
                stream=name,
                count=count,
                last_activity_micros=last,
                windows=tuple(SessionWindow(*window) for window in windows),
            )
            for name, count, last, windows in history["s"]
        ),
        processed=tuple(
            ProcessedEvent(event_id=entry[0], answer=tuple(entry[1:])) for entry in history["p"]
        ),
    )
