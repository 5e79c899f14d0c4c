"""A client's state as a Firestore document, in every version ever written.

Document form (version 3, written today): the few fields an operator looks at
(``client_id``, ``alias_of``, ``events``, ``first_seen_micros``) stay top-level and
readable; the bounded history is one ``state`` field of zlib-compressed compact JSON.
Firestore indexes every leaf of a map, and the history has about 1,500 leaves, so as maps
each commit would write that many index entries (and send about 7 kB); as one blob it
writes one entry and a fraction of the bytes.

Versions, and why each is still read:

- ``1``: the history as Firestore maps, every field named (never released; read so that
  no document a test deployment holds becomes a 500 loop).
- ``2``: the compressed history with session windows and remembered answers stored by the
  *position* of their dataclass fields; the first released form.
- ``3``: the compressed history names those positions once per document (``wf`` for
  windows, ``pf`` for answers), so adding or removing a field of ``SessionWindow`` or
  ``Resolved`` never makes a stored document unreadable: unknown names are ignored and
  missing ones take their defaults.

Invariants: ``decode(encode(state)) == state`` (a property test checks it); every document
states its version in ``v``; a document this code cannot read raises ``UnreadableState``
(a ``PermanentError``), so the message that needed it is dead-lettered with that reason
instead of failing on every redelivery.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any, Final

from shared.domain.identity import Identity, IdentityMark
from shared.domain.sessions import SessionWindow, StreamSessions
from shared.domain.state import RESOLVED_FIELDS, ClientState, ProcessedEvent, Resolved
from shared.errors import PermanentError

__all__ = ["CURRENT_VERSION", "UnreadableState", "decode", "encode"]

CURRENT_VERSION: Final = 3

WINDOW_FIELDS: Final = tuple(f.name for f in fields(SessionWindow))
V2_WINDOW_FIELDS: Final = (
    "session_id",
    "number",
    "start_micros",
    "last_micros",
    "events",
    "first_event_id",
    "previous_session_id",
    "campaign",
    "user_id",
)
V2_RESOLVED_FIELDS: Final = (
    "client_id",
    "user_id",
    "identity_source",
    "session_id",
    "session_number",
    "previous_session_id",
    "event_index",
    "first_event_id",
    "session_start_micros",
    "is_new_session",
    "late",
    "link",
    "new_link",
)


class UnreadableState(PermanentError):
    """A stored client document that no known version describes."""

    def __init__(self, detail: str) -> None:
        super().__init__("unreadable_state", detail)


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


_WINDOW_DEFAULTS: Final = _defaults(SessionWindow)
_RESOLVED_DEFAULTS: Final = _defaults(Resolved)


def _named(
    names: Sequence[str], values: Sequence[Any], wanted: Sequence[str], defaults: Mapping[str, Any]
) -> list[Any]:
    """``values`` stored under ``names``, re-ordered as ``wanted``; missing ones defaulted."""
    given = dict(zip(names, values, strict=False))
    missing = [name for name in wanted if name not in given and name not in defaults]
    if missing:
        raise UnreadableState(f"stored record lacks {', '.join(missing)}")
    return [given.get(name, defaults.get(name)) for name in wanted]


def _window(names: Sequence[str], values: Sequence[Any]) -> SessionWindow:
    return SessionWindow(*_named(names, values, WINDOW_FIELDS, _WINDOW_DEFAULTS))


def _answer(names: Sequence[str], values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_named(names, values, RESOLVED_FIELDS, _RESOLVED_DEFAULTS))


def _compact(state: ClientState) -> dict[str, Any]:
    return {
        "wf": WINDOW_FIELDS,
        "pf": RESOLVED_FIELDS,
        "m": [[mark.time_micros, mark.user_id] for mark in state.identity.marks],
        "u": list(state.identity.linked_users),
        "s": [
            [
                s.stream,
                s.count,
                s.last_activity_micros,
                [[getattr(w, name) for name in WINDOW_FIELDS] for w in s.windows],
            ]
            for s in state.streams
        ],
        "p": [[p.event_id, *p.answer] for p in state.processed],
    }


def encode(state: ClientState) -> dict[str, Any]:
    """The current document form: readable top-level facts plus the compressed history."""
    history = json.dumps(_compact(state), separators=(",", ":"), ensure_ascii=False)
    return {
        "v": CURRENT_VERSION,
        "client_id": state.client_id,
        "alias_of": state.alias_of,
        "events": state.events,
        "first_seen_micros": state.first_seen_micros,
        "state": zlib.compress(history.encode(), 1),
    }


def _window_reader(names: Sequence[str]) -> Callable[[Sequence[Any]], SessionWindow]:
    """How to read the windows of one document: by position when it names exactly today's
    fields in today's order (every document this version writes), else by name."""
    if tuple(names) == WINDOW_FIELDS:
        width = len(WINDOW_FIELDS)
        return lambda values: (
            SessionWindow(*values) if len(values) == width else _window(names, values)
        )
    return lambda values: _window(names, values)


def _answer_reader(names: Sequence[str]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """As ``_window_reader``, for remembered answers."""
    if tuple(names) == RESOLVED_FIELDS:
        width = len(RESOLVED_FIELDS)
        return lambda values: tuple(values) if len(values) == width else _answer(names, values)
    return lambda values: _answer(names, values)


def _from_history(
    data: Mapping[str, Any],
    history: Mapping[str, Any],
    window_names: Sequence[str],
    answer_names: Sequence[str],
) -> ClientState:
    window = _window_reader(window_names)
    answer = _answer_reader(answer_names)
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
                windows=tuple(window(values) for values in windows),
            )
            for name, count, last, windows in history["s"]
        ),
        processed=tuple(
            ProcessedEvent(event_id=entry[0], answer=answer(entry[1:])) for entry in history["p"]
        ),
    )


def _history(data: Mapping[str, Any]) -> Any:
    return json.loads(zlib.decompress(data["state"]))


def _decode_v1(data: Mapping[str, Any]) -> ClientState:
    identity = data.get("identity") or {}
    history = {
        "m": [[mark["time_micros"], mark.get("user_id")] for mark in identity.get("marks", [])],
        "u": identity.get("linked_users", []),
        "s": [
            [
                s["stream"],
                s["count"],
                s["last_activity_micros"],
                [
                    _named(list(w), list(w.values()), WINDOW_FIELDS, _WINDOW_DEFAULTS)
                    for w in s["windows"]
                ],
            ]
            for s in data.get("streams", [])
        ],
        "p": [
            [p["event_id"], *_named(list(p), list(p.values()), RESOLVED_FIELDS, _RESOLVED_DEFAULTS)]
            for p in data.get("processed", [])
        ],
    }
    return _from_history(data, history, WINDOW_FIELDS, RESOLVED_FIELDS)


def _decode_v2(data: Mapping[str, Any]) -> ClientState:
    return _from_history(data, _history(data), V2_WINDOW_FIELDS, V2_RESOLVED_FIELDS)


def _decode_v3(data: Mapping[str, Any]) -> ClientState:
    history = _history(data)
    return _from_history(data, history, history["wf"], history["pf"])


_DECODERS: Final[Mapping[int, Callable[[Mapping[str, Any]], ClientState]]] = {
    1: _decode_v1,
    2: _decode_v2,
    3: _decode_v3,
}


def decode(data: Mapping[str, Any]) -> ClientState:
    """The state a document of any known version holds, or ``UnreadableState``."""
    version = data.get("v")
    decoder = _DECODERS.get(version) if isinstance(version, int) else None
    if decoder is None:
        raise UnreadableState(f"client document version {version!r} is not one this code reads")
    try:
        return decoder(data)
    except UnreadableState:
        raise
    except (KeyError, TypeError, ValueError, IndexError, zlib.error) as exc:
        raise UnreadableState(
            f"client document v{version} is damaged: {type(exc).__name__}: {exc}"
        ) from None
