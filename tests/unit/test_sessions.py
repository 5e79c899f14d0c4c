"""Session rules on event time: timeout, ids, numbering, late events, optional splits."""

from __future__ import annotations

from dataclasses import replace

from shared.domain.sessions import (
    SessionAssignment,
    SessionEvent,
    SessionRules,
    StreamSessions,
    assign_session,
)

MINUTE = 60_000_000
T0 = 1_763_800_000_000_000
RULES = SessionRules()


def run(
    minutes: list[float], rules: SessionRules = RULES, **fields: object
) -> tuple[StreamSessions, list[SessionAssignment]]:
    stream = StreamSessions(stream="")
    answers = []
    for index, minute in enumerate(minutes):
        event = SessionEvent(T0 + int(minute * MINUTE), f"e{index}", **fields)  # type: ignore[arg-type]
        stream, answer = assign_session(stream, event, rules)
        answers.append(answer)
    return stream, answers


def test_events_within_thirty_minutes_share_a_session_with_the_first_events_time_as_id():
    """session_id is the first event's time in whole seconds, shared by the session's events."""
    _, answers = run([0, 10, 39.9, 69])
    assert {a.session_id for a in answers} == {T0 // 1_000_000}
    assert [a.event_index for a in answers] == [1, 2, 3, 4]
    assert [a.is_new_session for a in answers] == [True, False, False, False]
    assert {a.first_event_id for a in answers} == {"e0"}


def test_a_gap_of_exactly_the_timeout_starts_a_new_numbered_session():
    """Thirty minutes or more without an event starts session 2 pointing back at session 1."""
    _, answers = run([0, 30, 29.99 + 30])
    first, second, third = answers
    assert second.is_new_session
    assert second.session_number == 2
    assert second.previous_session_id == first.session_id
    assert second.session_id == (T0 + 30 * MINUTE) // 1_000_000
    assert not third.is_new_session


def test_a_configured_timeout_replaces_thirty_minutes():
    """SESSION_TIMEOUT_MINUTES=5 splits at five minutes."""
    _, answers = run([0, 4, 9.5], rules=replace(RULES, timeout_micros=5 * MINUTE))
    assert [a.session_number for a in answers] == [1, 1, 2]


def test_a_late_event_joins_the_window_that_contains_it_without_moving_activity_back():
    """An event older than the last one joins its own window; last activity stays put."""
    stream, answers = run([0, 10, 60, 70, 5])
    late = answers[-1]
    assert late.late
    assert late.session_id == answers[0].session_id
    assert late.session_number == 1
    assert late.event_index == 3
    assert stream.last_activity_micros == T0 + 70 * MINUTE
    assert stream.count == 2


def test_a_late_event_before_a_sessions_start_extends_it_and_keeps_its_id():
    """A late event shortly before a session's first event joins it; the id handed out stays."""
    stream, answers = run([60, 45])
    assert answers[1].session_id == answers[0].session_id
    assert answers[1].late
    assert answers[1].session_start_micros == T0 + 45 * MINUTE
    assert stream.count == 1


def test_a_late_event_far_from_every_window_opens_a_late_session_in_the_gap():
    """A late event in a gap is its own session, numbered next, pointing at the one before."""
    _, answers = run([0, 120, 60])
    late = answers[2]
    assert late.is_new_session
    assert late.late
    assert late.session_number == 3
    assert late.previous_session_id == answers[0].session_id
    _, more = run([0, 120, 60, 300])
    assert more[3].session_number == 4
    assert more[3].previous_session_id == answers[1].session_id


def test_sessions_on_the_same_second_get_distinct_ids():
    """Two sessions can never share a session_id, even when both start in the same second."""
    rules = replace(RULES, max_session_events=1)
    _, answers = run([0, 0.001], rules=rules)
    assert answers[0].session_id != answers[1].session_id


def test_campaign_change_splits_only_when_enabled():
    """A new utm campaign opens a session only with split_on_campaign."""
    stream = StreamSessions(stream="")
    rules = replace(RULES, split_on_campaign=True)
    stream, _ = assign_session(stream, SessionEvent(T0, "a", "utm_source=x"), rules)
    _, same = assign_session(stream, SessionEvent(T0 + MINUTE, "b", None), rules)
    _, changed = assign_session(stream, SessionEvent(T0 + MINUTE, "c", "utm_source=y"), rules)
    _, default = assign_session(stream, SessionEvent(T0 + MINUTE, "c", "utm_source=y"), RULES)
    assert not same.is_new_session
    assert changed.is_new_session
    assert not default.is_new_session


def test_user_change_splits_only_when_enabled():
    """A different user on the same client opens a session only with split_on_user_change."""
    rules = replace(RULES, split_on_user_change=True)
    stream, _ = assign_session(StreamSessions(stream=""), SessionEvent(T0, "a", None, "u1"), rules)
    _, other = assign_session(stream, SessionEvent(T0 + MINUTE, "b", None, "u2"), rules)
    _, anonymous = assign_session(stream, SessionEvent(T0 + MINUTE, "b", None, None), rules)
    _, default = assign_session(stream, SessionEvent(T0 + MINUTE, "b", None, "u2"), RULES)
    assert other.is_new_session
    assert not anonymous.is_new_session
    assert not default.is_new_session


def test_maximum_length_and_event_count_contain_bots():
    """Caps on length and event count split sessions that would grow without end."""
    _, by_length = run([0, 20, 40, 60], rules=replace(RULES, max_session_micros=45 * MINUTE))
    assert [a.session_number for a in by_length] == [1, 1, 1, 2]
    _, by_count = run([0, 1, 2, 3, 4], rules=replace(RULES, max_session_events=2))
    assert [a.session_number for a in by_count] == [1, 1, 2, 2, 3]


def test_remembered_windows_are_bounded():
    """However long the history, at most windows_kept windows are stored."""
    stream, _ = run([i * 40 for i in range(50)], rules=replace(RULES, windows_kept=3))
    assert len(stream.windows) == 3
    assert stream.count == 50
    assert [w.number for w in stream.windows] == [48, 49, 50]
