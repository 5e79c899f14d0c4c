"""Property tests: identity under disordered delivery against the rule on sorted event time.

The oracle ``sorted_time_decision`` is the README rule by brute force over a set of
events: an own (non-blocked) user id wins; an anonymous event gets the user of the latest
login at or before its time unless a logout (at a time strictly before it) or another
user's login came in between; a user's first event in time is its new link.

Theorems of ``resolve_identity`` (client histories within ``marks_kept``, distinct times):

- knowledge: under ANY delivery order, each event's ``(user_id, source)`` equals the oracle
  over the events delivered up to and including it. Hence soundness: a stitched user is
  never carried across a delivered logout nor past another delivered user's login, and is
  never a user with no delivered login before the event;
- exactness: it equals the oracle over *all* events whenever the latest mark (login or
  logout) at or before the event's time was delivered before it (true in particular when
  every mark preceding it in event time was). Otherwise the answer was unknowable when
  given, and it is never rewritten;
- links: each user is a new link exactly once, on its first *delivered* own-id event,
  which is the oracle's (first in event time) exactly when that event arrived first among
  the user's own-id events.

Delivery is either realistic (each event late by less than the session timeout) or any
permutation; logins, logouts (with or without their user id), blocked ids and a second
user on the same device are all drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.domain.events import Consent, RawEvent
from shared.domain.identity import Identity, IdentityRules, resolve_identity
from shared.domain.resolution import Rules, resolve_event
from shared.domain.sessions import SessionRules

SECOND = 1_000_000
MINUTE = 60 * SECOND
TIMEOUT = 30 * MINUTE
T0 = 1_763_000_000_000_000
NOW = T0 + 48 * 60 * MINUTE
BLOCKED = ("", "undefined", "null", "0")
RULES = IdentityRules()


@dataclass(frozen=True)
class Event:
    event_id: str
    time_micros: int
    user_id: str | None
    logout: bool

    @property
    def name(self) -> str:
        return "logout" if self.logout else ("login" if self.own else "page_view")

    @property
    def own(self) -> str | None:
        return None if self.user_id is None or self.user_id in BLOCKED else self.user_id


def sorted_time_decision(event: Event, known: list[Event]) -> tuple[str | None, str]:
    """The rule on event time over ``known``: ``(user_id, identity_source)`` of ``event``."""
    if event.own is not None:
        return event.own, "incoming"
    latest: tuple[tuple[int, int], str | None] | None = None
    for other in known:
        marks = [] if other.own is None or other.logout else [((other.time_micros, 1), other.own)]
        if other.logout:
            marks.append(((other.time_micros + 1, 0), None))  # effective strictly after it
        for key, user in marks:
            if key <= (event.time_micros, 1) and (latest is None or key > latest[0]):
                latest = (key, user)
    user = latest[1] if latest else None
    return user, "anonymous" if user is None else "stitched"


def is_mark(event: Event) -> bool:
    return event.logout or event.own is not None


def latest_mark_before(event: Event, events: list[Event]) -> Event | None:
    """The event whose mark the oracle uses for ``event`` (None: no mark precedes it)."""
    preceding = [
        e
        for e in events
        if is_mark(e) and (e.time_micros + 1 if e.logout else e.time_micros) <= event.time_micros
    ]
    return max(preceding, key=lambda e: e.time_micros, default=None)


def deliver(order: list[Event]) -> dict[str, tuple[str | None, str, bool]]:
    identity = Identity()
    answers = {}
    for event in order:
        identity, decision = resolve_identity(
            identity, event.user_id, event.name, event.time_micros, RULES
        )
        answers[event.event_id] = (decision.user_id, decision.source, decision.new_link)
    assert len(identity.marks) <= RULES.marks_kept
    return answers


@st.composite
def client_events(draw: st.DrawFn) -> list[Event]:
    """One client's events in event-time order: visits of anonymous browsing, logins of
    one of two users (a shared device), logouts with or without the id, blocked ids.
    Marks stay within ``marks_kept``; times are distinct and seconds apart."""
    kinds = st.sampled_from(["anon", "anon", "login", "own", "logout", "logout", "blocked"])
    events: list[Event] = []
    clock = T0
    marks = 0
    for visit in range(draw(st.integers(1, 3))):
        clock += draw(st.integers(31, 300)) * MINUTE if visit else 0
        for position in range(draw(st.integers(1, 10))):
            clock += draw(st.integers(2, 20 * 60)) * SECOND if position else 0
            kind = draw(kinds)
            user = draw(st.sampled_from(["u1", "u1", "u2"]))
            if kind in {"login", "own", "logout"} and marks >= RULES.marks_kept - 1:
                kind = "anon"
            user_id: str | None = {
                "anon": None,
                "login": user,
                "own": user,
                "logout": draw(st.sampled_from([None, user])),
                "blocked": draw(st.sampled_from(BLOCKED)),
            }[kind]
            event = Event(f"e{len(events)}", clock, user_id, kind == "logout")
            marks += is_mark(event)
            events.append(event)
    return events


@st.composite
def realistic_delivery(draw: st.DrawFn) -> tuple[list[Event], list[Event]]:
    """Events in event time and in arrival order, each late by less than the timeout."""
    events = draw(client_events())
    delays = [
        draw(st.sampled_from([0, 0, 5 * SECOND, TIMEOUT - 1]) | st.integers(0, TIMEOUT - 1))
        for _ in events
    ]
    arrival = {e.event_id: e.time_micros + d for e, d in zip(events, delays, strict=True)}
    return events, sorted(events, key=lambda e: (arrival[e.event_id], e.time_micros))


@st.composite
def any_delivery(draw: st.DrawFn) -> tuple[list[Event], list[Event]]:
    events = draw(client_events())
    return events, draw(st.permutations(events))


def scenario(*spec: tuple[int, str | None, bool], order: str) -> tuple[list[Event], list[Event]]:
    """Events at ``T0 + seconds`` in time order, delivered in ``order`` (indexes)."""
    events = [Event(f"e{i}", T0 + t * SECOND, u, out) for i, (t, u, out) in enumerate(spec)]
    return events, [events[int(i)] for i in order]


LOGOUT_BEFORE_ITS_LOGIN = scenario(
    (0, None, False),
    (10, "u1", False),
    (33, None, True),
    (60, None, False),
    (3600, None, False),
    order="02134",
)
"""The simulated-stream bug: the logout arrives before the login 23 s earlier."""

LATE_LOGOUT_BETWEEN_TWO_LOGINS = scenario(
    (0, "u1", False), (10, None, True), (20, "u1", False), (30, None, False), order="0213"
)
"""A second login of the same user is delivered before the logout that precedes it."""

SHARED_DEVICE_LATE_SWITCH = scenario(
    (0, "u1", False), (10, None, False), (20, "u2", False), (30, None, False), order="0132"
)
"""u2's login arrives after an event it precedes: that event keeps u1 (unknowable)."""


def check(events: list[Event], order: list[Event]) -> int:
    """All three theorems for one delivery; the number of exactly decided events."""
    answers = deliver(order)
    exact = 0
    for position, event in enumerate(order):
        user, source, _ = answers[event.event_id]
        delivered = order[: position + 1]
        assert (user, source) == sorted_time_decision(event, delivered), event
        decider = latest_mark_before(event, events)
        if decider is None or decider in delivered:
            assert (user, source) == sorted_time_decision(event, events), event
            exact += 1
    for who in {e.own for e in events if e.own is not None}:
        own = [e for e in events if e.own == who]
        links = [e for e in own if answers[e.event_id][2]]
        first_delivered = next(e for e in order if e.own == who)
        assert links == [first_delivered]
        first_in_time = min(own, key=lambda e: e.time_micros)
        assert (links == [first_in_time]) == (first_delivered is first_in_time)
    assert not any(answers[e.event_id][2] for e in events if e.own is None)
    return exact


@settings(max_examples=300, deadline=None)
@given(realistic_delivery())
@example(LOGOUT_BEFORE_ITS_LOGIN)
@example(LATE_LOGOUT_BETWEEN_TWO_LOGINS)
def test_realistic_disorder_decides_identity_as_sorted_event_time_when_knowable(
    case: tuple[list[Event], list[Event]],
) -> None:
    """Late by less than the timeout: exact whenever the deciding mark came first."""
    check(*case)


@settings(max_examples=300, deadline=None)
@given(any_delivery())
@example(SHARED_DEVICE_LATE_SWITCH)
def test_any_order_is_sound_and_exact_on_what_was_delivered(
    case: tuple[list[Event], list[Event]],
) -> None:
    """Any permutation: the answer is the rule on the events delivered so far."""
    check(*case)


@settings(max_examples=100, deadline=None)
@given(client_events())
def test_in_event_time_order_every_decision_is_the_rule(events: list[Event]) -> None:
    """No disorder: every event is decided exactly, links on each user's first event."""
    assert check(events, events) == len(events)


def raw(event: Event) -> RawEvent:
    return RawEvent(
        event_id=event.event_id,
        client_id="1.2",
        incoming_client_id="1.2",
        event_name=event.name,
        time_micros=event.time_micros,
        time_source="timestamp_micros",
        user_id=event.user_id,
        stream_id="G-1",
        consent=Consent(),
    )


@settings(max_examples=100, deadline=None)
@given(realistic_delivery(), st.data())
def test_resolve_event_carries_the_decisions_and_answers_redeliveries_identically(
    case: tuple[list[Event], list[Event]], data: st.DataObject
) -> None:
    """Through ``resolve_event``, with redeliveries: same decisions, one link per user."""
    _, order = case
    expected = deliver(order)
    stream = list(order)
    for event in data.draw(st.lists(st.sampled_from(order), max_size=4)):
        first = stream.index(event)
        stream.insert(data.draw(st.integers(first + 1, len(stream))), event)
    rules = Rules(sessions=SessionRules(processed_kept=200))
    state = None
    for event in stream:
        resolution = resolve_event(state, raw(event), rules, NOW)
        state = resolution.state
        resolved = resolution.resolved
        decision = (resolved.user_id, resolved.identity_source, resolved.new_link)
        assert decision == expected[event.event_id]
        assert resolution.new_link == (resolved.new_link and not resolution.duplicate)
