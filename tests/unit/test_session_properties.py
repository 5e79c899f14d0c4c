"""Property tests: disordered, duplicated delivery against sessions defined on sorted event time.

Two theorems of ``shared.domain.sessions``:

- exactness: when every late event lies within the timeout of the on-time events of its
  own session (and those have no gap of a timeout), resolving in delivery order, with
  duplicates anywhere after the original, groups events exactly as 30-minute inactivity
  over the sorted times does, with the same session numbers;
- soundness: under *any* shuffle, no produced session mixes two true sessions, a
  duplicate always gets the identical answer, and each event is counted once.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.events import Consent, RawEvent
from shared.domain.resolution import Rules, resolve_event
from shared.domain.sessions import SessionRules
from shared.domain.state import ClientState, Resolved

MINUTE = 60_000_000
T0 = 1_763_000_000_000_000
TIMEOUT = 30 * MINUTE
NOW = T0 + 48 * 60 * MINUTE
RULES = Rules(sessions=SessionRules(windows_kept=8, processed_kept=200))


def raw(event_id: str, time_micros: int) -> RawEvent:
    return RawEvent(
        event_id=event_id,
        client_id="1.2",
        incoming_client_id="1.2",
        event_name="page_view",
        time_micros=time_micros,
        time_source="timestamp_micros",
        user_id=None,
        stream_id="G-1",
        consent=Consent(),
    )


def true_sessions(times: dict[str, int]) -> list[list[str]]:
    """30-minute inactivity over sorted event times: the definition, by brute force."""
    ordered = sorted(times, key=lambda e: times[e])
    sessions: list[list[str]] = []
    for event_id in ordered:
        if sessions and times[event_id] - times[sessions[-1][-1]] < TIMEOUT:
            sessions[-1].append(event_id)
        else:
            sessions.append([event_id])
    return sessions


def deliver(
    order: list[str], times: dict[str, int]
) -> tuple[ClientState | None, dict[str, list[Resolved]]]:
    state: ClientState | None = None
    answers: dict[str, list[Resolved]] = defaultdict(list)
    for event_id in order:
        resolution = resolve_event(state, raw(event_id, times[event_id]), RULES, NOW)
        state = resolution.state
        answers[event_id].append(resolution.resolved)
    return state, answers


def grouping(answers: dict[str, list[Resolved]]) -> set[frozenset[str]]:
    groups: dict[int | None, set[str]] = defaultdict(set)
    for event_id, results in answers.items():
        groups[results[0].session_id].add(event_id)
    return {frozenset(group) for group in groups.values()}


sessions_strategy = st.lists(
    st.tuples(
        st.integers(min_value=30, max_value=600),  # minutes since the previous session's end
        st.lists(st.integers(min_value=0, max_value=29), min_size=1, max_size=8),  # gaps
    ),
    min_size=1,
    max_size=6,
)


@st.composite
def realistic_delivery(draw: st.DrawFn) -> tuple[dict[str, int], list[str]]:
    """Sorted-time events, some delayed (never opening a gap), some redelivered."""
    times: dict[str, int] = {}
    session_of: dict[str, int] = {}
    clock = T0
    for index, (pause, gaps) in enumerate(draw(sessions_strategy)):
        clock += pause * MINUTE
        for position, gap in enumerate(gaps):
            clock += (gap * MINUTE + draw(st.integers(0, MINUTE - 1))) if position else 0
            event_id = f"e{len(times)}"
            times[event_id] = clock
            session_of[event_id] = index
    ordered = sorted(times, key=lambda e: times[e])
    late = {e for e in ordered if draw(st.booleans())}
    for index in set(session_of.values()):
        members = [e for e in ordered if session_of[e] == index]
        on_time = [e for e in members if e not in late]
        gaps_ok = all(times[b] - times[a] < TIMEOUT for a, b in itertools.pairwise(on_time))
        span_ok = bool(on_time) and all(
            times[on_time[0]] - TIMEOUT < times[e] < times[on_time[-1]] + TIMEOUT for e in members
        )
        if not (gaps_ok and span_ok):
            late -= set(members)
    order = [e for e in ordered if e not in late]
    for event_id in sorted(late, key=lambda e: times[e]):
        preceding = [e for e in ordered[: ordered.index(event_id)] if e not in late]
        earliest = order.index(preceding[-1]) + 1 if preceding else 0
        order.insert(draw(st.integers(earliest, len(order))), event_id)
    for event_id in draw(st.lists(st.sampled_from(ordered), max_size=5)):
        first = order.index(event_id)
        order.insert(draw(st.integers(first + 1, len(order))), event_id)
    return times, order


@settings(max_examples=300, deadline=None)
@given(realistic_delivery())
def test_realistic_disorder_and_duplicates_reproduce_sorted_time_sessions(
    case: tuple[dict[str, int], list[str]],
) -> None:
    """Late (non-gap-opening) and duplicated deliveries give exactly the sorted-time sessions."""
    times, order = case
    state, answers = deliver(order, times)
    truth = true_sessions(times)
    assert grouping(answers) == {frozenset(session) for session in truth}
    for number, session in enumerate(truth, start=1):
        assert {answers[e][0].session_number for e in session} == {number}
    assert state is not None
    assert state.events == len(times)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=25),
    st.randoms(use_true_random=False),
)
def test_any_shuffle_never_merges_true_sessions_and_answers_duplicates_identically(
    minutes: list[int], rng: object
) -> None:
    """Under arbitrary disorder a produced session never spans two true sessions."""
    times = {f"e{i}": T0 + m * MINUTE for i, m in enumerate(minutes)}
    order = list(times) + list(times)[: len(times) // 3]
    rng.shuffle(order)  # type: ignore[attr-defined]
    state, answers = deliver(order, times)
    truth_of = {e: i for i, session in enumerate(true_sessions(times)) for e in session}
    for group in grouping(answers):
        assert len({truth_of[e] for e in group}) == 1
    for results in answers.values():
        assert all(r == results[0] for r in results)
    assert state is not None
    assert state.events == len(times)
    assert state.stream("G-1").last_activity_micros == max(times.values())
