"""Which user an event belongs to: its own user id, the client's linked user, or nobody.

Rules:

- An event's own (non-blocked) ``user_id`` wins and marks a login at the event's time.
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

Invariant: marks are ordered by time, bounded to ``marks_kept``, and no two adjacent
marks name the same user.
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


def _with_mark(identity: Identity, mark: IdentityMark, kept: int) -> tuple[IdentityMark, ...]:
    if identity.user_at(mark.time_micros) == mark.user_id:
        return identity.marks
    marks = list(identity.marks)
    times = [m.time_micros for m in marks]
    index = bisect.bisect_right(times, mark.time_micros)
    marks.insert(index, mark)
    if index + 1 < len(marks) and marks[index + 1].user_id == mark.user_id:
        del marks[index + 1]
    return tuple(marks[-kept:])


def resolve_identity(
    identity: Identity,
    user_id: str | None,
    event_name: str,
    time_micros: int,
    rules: IdentityRules,
) -> tuple[Identity, IdentityDecision]:
    """Decide the event's user and the client's new identity state."""
    own = clean_user_id(user_id, rules)
    marks = identity.marks
    linked = identity.linked_users
    new_link = False
    decision_user: str | None
    source: IdentitySource
    if own is not None:
        decision_user = own
        source = "incoming"
        marks = _with_mark(identity, IdentityMark(time_micros, own), rules.marks_kept)
        if own not in linked:
            new_link = True
            linked = (*linked, own)[-LINKED_USERS_KEPT:]
    else:
        decision_user = identity.user_at(time_micros)
        source = "stitched" if decision_user is not None else "anonymous"
    if event_name.lower() in rules.logout_events:
        after = Identity(marks, linked)
        marks = _with_mark(after, IdentityMark(time_micros + 1, None), rules.marks_kept)
    return Identity(marks, linked), IdentityDecision(decision_user, source, new_link)
