"""GA4-compatible sessions decided on event time.

Rules (defaults follow GA4):

- A session ends after ``timeout`` (30 min) without an event, on *event* time, not
  arrival time. ``session_id`` is the first event's time in whole seconds (GA4's
  ``ga_session_id``); ``session_number`` counts the stream's sessions, 1-based.
- A late event (earlier than the stream's last activity) joins the remembered window
  within ``timeout`` of it. It never moves ``last_activity_micros`` backwards, and never
  changes an id that was already handed out: a window that grows backwards keeps its
  ``session_id``.
- Optional splits (campaign change, user change, maximum length, maximum event count)
  apply only to in-order events extending the current window; all are off by default.

Invariant (the soundness theorem the property tests check): the events of one window,
sorted by time, never have a gap of ``timeout`` or more, so a window never merges two
sessions that sorted event times would keep apart. With disorder that opens no such gap
before the late event arrives, windows equal the sorted-time sessions exactly.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, replace

__all__ = [
    "SessionAssignment",
    "SessionEvent",
    "SessionRules",
    "SessionWindow",
    "StreamSessions",
    "assign_session",
]


@dataclass(frozen=True)
class SessionRules:
    """How events are grouped into sessions. Defaults follow GA4."""

    timeout_micros: int = 30 * 60 * 1_000_000
    allowed_lateness_micros: int = 72 * 3600 * 1_000_000
    max_future_micros: int = 24 * 3600 * 1_000_000
    split_on_campaign: bool = False
    split_on_user_change: bool = False
    max_session_micros: int = 0
    """0 disables the cap on a session's length."""
    max_session_events: int = 0
    """0 disables the cap on a session's event count."""
    windows_kept: int = 8
    """Recent session windows remembered per stream, to place late events."""
    processed_kept: int = 100
    """Recent event ids remembered per client, to answer redeliveries identically."""


@dataclass(frozen=True)
class SessionWindow:
    session_id: int
    number: int
    start_micros: int
    """Earliest event time seen in the session (may precede ``session_id`` after late events)."""
    last_micros: int
    events: int
    first_event_id: str
    previous_session_id: int | None = None
    campaign: str | None = None
    user_id: str | None = None
    source: Mapping[str, str | None] | None = None
    """The session's traffic source, decided by the event that opened the window and never
    changed after (a late event that becomes the earliest keeps it: one session, one source)."""


@dataclass(frozen=True)
class StreamSessions:
    """Session state of one client on one GA4 stream (GA4 keeps a session cookie per stream)."""

    stream: str
    count: int = 0
    last_activity_micros: int = 0
    windows: tuple[SessionWindow, ...] = ()
    """Most recent ``windows_kept`` sessions, ordered by ``start_micros``."""

    @property
    def current(self) -> SessionWindow | None:
        return max(self.windows, key=lambda w: w.last_micros, default=None)


@dataclass(frozen=True)
class SessionEvent:
    time_micros: int
    event_id: str
    campaign: str | None = None
    user_id: str | None = None
    source: Mapping[str, str | None] | None = None
    """The traffic source this event would give a session it opens."""


@dataclass(frozen=True)
class SessionAssignment:
    session_id: int
    session_number: int
    previous_session_id: int | None
    event_index: int
    first_event_id: str
    session_start_micros: int
    is_new_session: bool
    late: bool
    source: Mapping[str, str | None] | None = None
    earliest: bool = False
    """The event is the earliest of its session so far (it opened the window, or a late event
    moved the window's start back): where the session's source must be in force from."""


def _distance(window: SessionWindow, time_micros: int) -> int:
    if time_micros < window.start_micros:
        return window.start_micros - time_micros
    return max(0, time_micros - window.last_micros)


def _window_for(
    windows: tuple[SessionWindow, ...], time_micros: int, timeout: int
) -> SessionWindow | None:
    """The remembered window an event belongs to: nearest within ``timeout``, earlier on ties."""
    near = [w for w in windows if _distance(w, time_micros) < timeout]
    return min(near, key=lambda w: (_distance(w, time_micros), w.start_micros), default=None)


def _must_split(window: SessionWindow, event: SessionEvent, rules: SessionRules) -> bool:
    if rules.max_session_events and window.events >= rules.max_session_events:
        return True
    if (
        rules.max_session_micros
        and event.time_micros - window.start_micros >= rules.max_session_micros
    ):
        return True
    if rules.split_on_campaign and event.campaign and event.campaign != window.campaign:
        return True
    return bool(
        rules.split_on_user_change
        and event.user_id
        and window.user_id
        and event.user_id != window.user_id
    )


def _join(window: SessionWindow, event: SessionEvent) -> SessionWindow:
    return replace(
        window,
        start_micros=min(window.start_micros, event.time_micros),
        last_micros=max(window.last_micros, event.time_micros),
        events=window.events + 1,
        user_id=window.user_id or event.user_id,
    )


def _open(stream: StreamSessions, event: SessionEvent, late: bool) -> SessionWindow:
    taken = {w.session_id for w in stream.windows}
    session_id = event.time_micros // 1_000_000
    while session_id in taken:
        session_id += 1
    if late:
        earlier = [w for w in stream.windows if w.start_micros < event.time_micros]
        previous = max(earlier, key=lambda w: w.start_micros).session_id if earlier else None
    else:
        current = stream.current
        previous = current.session_id if current else None
    return SessionWindow(
        session_id=session_id,
        number=stream.count + 1,
        start_micros=event.time_micros,
        last_micros=event.time_micros,
        events=1,
        first_event_id=event.event_id,
        previous_session_id=previous,
        campaign=event.campaign,
        user_id=event.user_id,
        source=event.source,
    )


def _store(
    windows: tuple[SessionWindow, ...], old: SessionWindow | None, new: SessionWindow, kept: int
) -> tuple[SessionWindow, ...]:
    kept_windows = [w for w in windows if w is not old]
    starts = [w.start_micros for w in kept_windows]
    kept_windows.insert(bisect.bisect_right(starts, new.start_micros), new)
    return tuple(kept_windows[-kept:])


def assign_session(
    stream: StreamSessions, event: SessionEvent, rules: SessionRules
) -> tuple[StreamSessions, SessionAssignment]:
    """Place one (not yet seen) event in a session; returns the new stream state and the answer."""
    late = event.time_micros < stream.last_activity_micros
    window = _window_for(stream.windows, event.time_micros, rules.timeout_micros)
    extends_current = (
        window is not None and window is stream.current and event.time_micros >= window.last_micros
    )
    if window is not None and not (extends_current and _must_split(window, event, rules)):
        chosen, is_new, count = _join(window, event), False, stream.count
    else:
        chosen, is_new, count = _open(stream, event, late), True, stream.count + 1
        window = None
    updated = StreamSessions(
        stream=stream.stream,
        count=count,
        last_activity_micros=max(stream.last_activity_micros, event.time_micros),
        windows=_store(stream.windows, window, chosen, rules.windows_kept),
    )
    return updated, SessionAssignment(
        session_id=chosen.session_id,
        session_number=chosen.number,
        previous_session_id=chosen.previous_session_id,
        event_index=chosen.events,
        first_event_id=chosen.first_event_id,
        session_start_micros=chosen.start_micros,
        is_new_session=is_new,
        late=late,
        source=chosen.source,
        earliest=is_new or window is None or event.time_micros < window.start_micros,
    )
