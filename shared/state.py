"""A client's stored state, and its Firestore document form.

Invariant: the document of a client is bounded whatever its history: identity marks
(``marks_kept``), linked users (20), session windows per stream (``windows_kept``) and
processed event ids (``processed_kept``) are all capped, so a document's size and write
cost stay constant once a client's history exceeds those windows.

``to_document`` and ``from_document`` are exact inverses (checked by a property test);
the field names are short but readable, because ``ga4-stitch inspect`` shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.identity import Identity, IdentityMark, IdentitySource
from shared.sessions import SessionWindow, StreamSessions

SCHEMA_VERSION = 1


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


@dataclass(frozen=True)
class ProcessedEvent:
    event_id: str
    resolved: Resolved


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


def _window_from(data: Mapping[str, Any]) -> SessionWindow:
    values: dict[str, Any] = {key: data.get(key) for key in SessionWindow.__dataclass_fields__}
    return SessionWindow(**values)


def _resolved_from(data: Mapping[str, Any]) -> Resolved:
    values: dict[str, Any] = {key: data.get(key) for key in Resolved.__dataclass_fields__}
    values["link"] = dict(data["link"]) if data.get("link") else None
    return Resolved(**values)


def to_document(state: ClientState) -> dict[str, Any]:
    """The Firestore representation (plain maps and lists; no nested arrays)."""
    return {
        "v": SCHEMA_VERSION,
        "client_id": state.client_id,
        "first_seen_micros": state.first_seen_micros,
        "events": state.events,
        "alias_of": state.alias_of,
        "identity": {
            "marks": [asdict(mark) for mark in state.identity.marks],
            "linked_users": list(state.identity.linked_users),
        },
        "streams": [
            {
                "stream": s.stream,
                "count": s.count,
                "last_activity_micros": s.last_activity_micros,
                "windows": [asdict(w) for w in s.windows],
            }
            for s in state.streams
        ],
        "processed": [{"event_id": p.event_id, **asdict(p.resolved)} for p in state.processed],
    }


def from_document(data: Mapping[str, Any]) -> ClientState:
    """Inverse of ``to_document``."""
    identity = data.get("identity") or {}
    return ClientState(
        client_id=data["client_id"],
        first_seen_micros=data.get("first_seen_micros", 0),
        events=data.get("events", 0),
        alias_of=data.get("alias_of"),
        identity=Identity(
            marks=tuple(
                IdentityMark(m["time_micros"], m.get("user_id")) for m in identity.get("marks", [])
            ),
            linked_users=tuple(identity.get("linked_users", [])),
        ),
        streams=tuple(
            StreamSessions(
                stream=s["stream"],
                count=s["count"],
                last_activity_micros=s["last_activity_micros"],
                windows=tuple(_window_from(w) for w in s.get("windows", [])),
            )
            for s in data.get("streams", [])
        ),
        processed=tuple(
            ProcessedEvent(event_id=p["event_id"], resolved=_resolved_from(p))
            for p in data.get("processed", [])
        ),
    )
