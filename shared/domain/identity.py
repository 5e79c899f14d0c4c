"""Which user an event belongs to: its own user id, the client's linked user, or nobody.

Rules:

- An event's own (non-blocked) ``user_id`` wins and marks a login at the event's time.
- A logout event keeps its user and marks a logout just after it, even when nobody is
  linked yet: the login it ends may be delivered after it.
- An anonymous event inherits the user of the latest mark at or before its *event time*:
  a login mark gives that user, a logout mark (an event named in ``logout_events``) gives
  nobody. Late events are therefore judged by when they happened, not when they arrived,
  so a late anonymous event from before a logout still gets its user and one from after
  it never leaks the previous user.
- A different user logging in on the same client (shared device) starts a new mark;
  ``linked_users`` keeps every user the client was linked to, and a pair seen for the first
  time is a *new link* (published so the warehouse can restitch history).
- Blocked values (``""``, ``null``, ``undefined``, ``anonymous``, ``0``, ``-1``...) are
  never linked: the event is treated as anonymous.

Invariants: marks are ordered by time (a logout before a login at the same microsecond),
bounded to ``marks_kept``, and recorded whatever the current state, so the marks known
answer for every time exactly as the same events sorted by event time would (while the
history fits in ``marks_kept``; beyond it redundant logins are forgotten first, then the
oldest marks). A decision is final: an anonymous event decided before an earlier login
arrived stays anonymous, because the stream never rewrites an answer already given.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_BLOCKED_USER_IDS",
    "Identity",
    "IdentityDecision",
    "IdentityMark",
    "IdentityRules",
    "IdentitySource",
    "resolve_identity",
]


IdentitySource = Literal["incoming", "stitched", "anonymous"]

LINKED_USERS_KEPT = 20


DEFAULT_BLOCKED_USER_IDS = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "nan",
        "anonymous",
        "guest",
        "unknown",
        "0",
        "-1",
        "false",
        "true",
        "[object object]",
        "not set",
        "(not set)",
        "n/a",
    }
)


@dataclass(frozen=True)
class IdentityRules:
    """How anonymous events inherit a user id, and which ids never link."""

    logout_events: frozenset[str] = frozenset({"logout"})
    blocked_user_ids: frozenset[str] = DEFAULT_BLOCKED_USER_IDS
    marks_kept: int = 16
    """Recent login/logout marks remembered per client (bounded history)."""


@dataclass(frozen=True)
class IdentityMark:
    time_micros: int
    user_id: str | None
    """None marks a logout."""


@dataclass(frozen=True)
class Identity:
    marks: tuple[IdentityMark, ...] = ()
    linked_users: tuple[str, ...] = ()

    def user_at(self, time_micros: int) -> str | None:
        """The user the latest mark at or before ``time_micros`` names."""
        times = [mark.time_micros for mark in self.marks]
        index = bisect.bisect_right(times, time_micros)
        return self.marks[index - 1].user_id if index else None

    @property
    def current_user(self) -> str | None:
        return self.marks[-1].user_id if self.marks else None


@dataclass(frozen=True)
class IdentityDecision:
    user_id: str | None
    source: IdentitySource
    new_link: bool


def clean_user_id(value: str | None, rules: IdentityRules) -> str | None:
    """The user id if it may be linked; None for missing or blocked values."""
    if value is None:
        return None
    text = value.strip()
    if text.lower() in rules.blocked_user_ids:
        return None
    return text


def _key(mark: IdentityMark) -> tuple[int, int]:
    """Order of marks: event time, and at one time a logout before a login.

    A logout mark sits one microsecond after its event, so a login at that microsecond
    happened *after* the logout and must be the one that counts."""
    return (mark.time_micros, 0 if mark.user_id is None else 1)


def _redundant_login(marks: list[IdentityMark], index: int) -> bool:
    """A login of the user the previous mark already names: it changes no answer today,
    but restores the user after a logout that may still arrive between the two."""
    mark = marks[index]
    return index > 0 and mark.user_id is not None and marks[index - 1].user_id == mark.user_id


def _with_mark(
    marks: tuple[IdentityMark, ...], mark: IdentityMark, kept: int
) -> tuple[IdentityMark, ...]:
    """``marks`` with ``mark`` recorded, whatever the current state.

    Every mark is kept, even one that changes no answer now, because a mark delivered
    later may land before it: a logout with no login before it ends the login that
    arrives late; a second login of the same user restores them after a late logout.
    Recording the same mark twice changes nothing.

    Bounded to ``kept``: the oldest redundant login goes first (no answer for the marks
    known changes), else the oldest mark. A full history may have forgotten what came
    before its oldest mark, so it ignores marks older than that: a late event from before
    that horizon is judged anonymous rather than linked across a forgotten logout. What
    remains inexact: a mark arriving late into the gap of a forgotten redundant login is
    judged without that login (a late logout then ends the user until the next kept mark,
    a late other user's login runs until it)."""
    if mark in marks:
        return marks
    if len(marks) >= kept and marks and _key(mark) < _key(marks[0]):
        return marks
    result = list(marks)
    result.insert(bisect.bisect_right([_key(m) for m in result], _key(mark)), mark)
    while len(result) > kept:
        redundant = next((i for i in range(len(result)) if _redundant_login(result, i)), 0)
        del result[redundant]
    return tuple(result)


def resolve_identity(
    identity: Identity,
    user_id: str | None,
    event_name: str,
    time_micros: int,
    rules: IdentityRules,
) -> tuple[Identity, IdentityDecision]:
    """Decide the event's user and the client's new identity state.

    The decision uses only the marks delivered so far: it equals the sorted-event-time
    decision whenever the latest mark at or before the event's time was delivered before
    it, and it is never rewritten when an earlier mark arrives later. A logout event keeps
    its own user (its own id, else the one linked at its time) and records a logout mark
    one microsecond later even when nobody is linked now: its login may still arrive. It
    records no login mark for its own id, which would only cover its own microsecond."""
    own = clean_user_id(user_id, rules)
    marks = identity.marks
    linked = identity.linked_users
    new_link = False
    logout = event_name.lower() in rules.logout_events
    decision_user: str | None
    source: IdentitySource
    if own is not None:
        decision_user = own
        source = "incoming"
        if not logout:
            marks = _with_mark(marks, IdentityMark(time_micros, own), rules.marks_kept)
        if own not in linked:
            new_link = True
            linked = (*linked, own)[-LINKED_USERS_KEPT:]
    else:
        decision_user = identity.user_at(time_micros)
        source = "stitched" if decision_user is not None else "anonymous"
    if logout:
        marks = _with_mark(marks, IdentityMark(time_micros + 1, None), rules.marks_kept)
    return Identity(marks, linked), IdentityDecision(decision_user, source, new_link)
