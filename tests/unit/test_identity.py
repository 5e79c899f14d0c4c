"""Identity rules: own user id wins, stitching until logout, shared devices, blocked values."""

from __future__ import annotations

from shared.domain.identity import Identity, IdentityDecision, IdentityRules, resolve_identity

RULES = IdentityRules()


def play(
    events: list[tuple[int, str | None, str]], rules: IdentityRules = RULES
) -> tuple[Identity, list[IdentityDecision]]:
    identity = Identity()
    decisions = []
    for time_micros, user_id, name in events:
        identity, decision = resolve_identity(identity, user_id, name, time_micros, rules)
        decisions.append(decision)
    return identity, decisions


def test_an_events_own_user_id_wins_and_later_anonymous_events_are_stitched():
    """After a login, anonymous events of the client get the user, marked stitched."""
    _, decisions = play([(1, None, "page_view"), (2, "u1", "login"), (3, None, "page_view")])
    assert [(d.user_id, d.source) for d in decisions] == [
        (None, "anonymous"),
        ("u1", "incoming"),
        ("u1", "stitched"),
    ]
    assert [d.new_link for d in decisions] == [False, True, False]


def test_after_logout_anonymous_events_stay_anonymous_until_the_next_login():
    """The logout event keeps its user; events after it are anonymous; a login re-links."""
    _, decisions = play(
        [
            (1, "u1", "login"),
            (2, None, "logout"),
            (3, None, "page_view"),
            (4, "u1", "login"),
            (5, None, "x"),
        ]
    )
    assert [d.user_id for d in decisions] == ["u1", "u1", None, "u1", "u1"]
    assert [d.new_link for d in decisions] == [True, False, False, False, False]


def test_logout_event_names_are_configurable():
    """LOGOUT_EVENTS replaces the default logout event name."""
    rules = IdentityRules(logout_events=frozenset({"sign_out"}))
    _, decisions = play(
        [(1, "u1", "login"), (2, None, "sign_out"), (3, None, "logout"), (4, None, "x")], rules
    )
    assert [d.user_id for d in decisions] == ["u1", "u1", None, None]


def test_a_second_user_on_a_shared_device_replaces_the_link_and_history_keeps_both():
    """Another user logging in on the same client takes over from then; both stay linked."""
    identity, decisions = play(
        [(1, "u1", "login"), (2, None, "x"), (3, "u2", "login"), (4, None, "x")]
    )
    assert [d.user_id for d in decisions] == ["u1", "u1", "u2", "u2"]
    assert identity.linked_users == ("u1", "u2")
    assert [d.new_link for d in decisions] == [True, False, True, False]


def test_late_anonymous_events_are_judged_by_their_event_time():
    """Late events are judged by event time: before login anonymous, before logout the user."""
    identity, _ = play([(10, "u1", "login"), (20, None, "logout")])
    _, before_login = resolve_identity(identity, None, "x", 5, RULES)
    _, between = resolve_identity(identity, None, "x", 15, RULES)
    _, after_logout = resolve_identity(identity, None, "x", 25, RULES)
    assert (before_login.user_id, between.user_id, after_logout.user_id) == (None, "u1", None)


def test_blocked_values_are_never_linked():
    """Placeholder ids like 'undefined', 'null', '0' or '' behave as anonymous."""
    for value in ["", "null", "undefined", "Anonymous", "0", "-1", " none "]:
        _, decisions = play([(1, value, "login"), (2, None, "x")])
        assert [d.user_id for d in decisions] == [None, None], value
    rules = IdentityRules(blocked_user_ids=RULES.blocked_user_ids | {"test-user"})
    _, decisions = play([(1, "test-user", "login")], rules)
    assert decisions[0].user_id is None


def test_identity_history_is_bounded():
    """However many logins and logouts, at most marks_kept marks are remembered."""
    rules = IdentityRules(marks_kept=4)
    events = [(t, f"u{t}" if t % 2 else None, "login" if t % 2 else "logout") for t in range(1, 40)]
    identity, _ = play(events, rules)
    assert len(identity.marks) == 4
    assert len(identity.linked_users) == 20


def test_a_logout_delivered_before_its_login_still_ends_it():
    """The logout arrives first (nobody linked yet); the login 23 s earlier arrives next:
    the user is linked from the login to the logout, never after it."""
    login, logout = 100_000_000, 123_000_000
    identity, decisions = play([(logout, None, "logout"), (login, "u1", "login")])
    assert [(d.user_id, d.source) for d in decisions] == [(None, "anonymous"), ("u1", "incoming")]
    assert identity.user_at(login + 1) == "u1"
    assert identity.user_at(logout + 1) is None
    assert identity.user_at(logout + 3_600_000_000) is None


def test_a_logout_with_no_login_links_nobody_and_changes_no_answer():
    """Before any login, a logout (with a blocked id too) is anonymous and links nobody."""
    identity, decisions = play([(1, None, "x"), (2, "undefined", "logout"), (5, None, "x")])
    assert [(d.user_id, d.source, d.new_link) for d in decisions] == [
        (None, "anonymous", False)
    ] * 3
    assert identity.linked_users == ()
    assert [mark.user_id for mark in identity.marks] == [None]


def test_a_late_logout_between_two_logins_of_the_same_user_ends_only_the_first():
    """Logged in at 10 and again at 20; the logout at 15 arrives last: anonymous on
    (15, 20), the user again from 20 (the second login is remembered though redundant)."""
    identity, _ = play([(10, "u1", "login"), (20, "u1", "page_view"), (15, None, "logout")])
    assert [identity.user_at(t) for t in (12, 17, 25)] == ["u1", None, "u1"]


def test_an_answer_given_before_an_earlier_login_arrived_is_never_rewritten():
    """Shared device: u2's login at 20 arrives after the event at 30, which kept u1; events
    delivered afterwards get u2, and u2 is a new link once."""
    identity, decisions = play(
        [(10, "u1", "login"), (30, None, "x"), (20, "u2", "login"), (35, None, "x")]
    )
    assert [d.user_id for d in decisions] == ["u1", "u1", "u2", "u2"]
    assert [d.new_link for d in decisions] == [True, False, True, False]
    assert identity.user_at(30) == "u2"


def test_the_logouts_own_microsecond_keeps_the_user_and_a_login_just_after_wins():
    """A logout ends the link one microsecond after it; a login at that microsecond
    happened after the logout, whatever the delivery order."""
    for events in (
        [(10, "u1", "login"), (20, None, "logout"), (21, "u2", "login")],
        [(10, "u1", "login"), (21, "u2", "login"), (20, None, "logout")],
    ):
        identity, _ = play(events)
        assert [identity.user_at(t) for t in (20, 21)] == ["u1", "u2"], events


def test_recording_a_mark_twice_changes_nothing():
    """A redelivered login or logout leaves the marks as they were."""
    once, _ = play([(10, "u1", "login"), (20, None, "logout")])
    twice, _ = play(
        [(10, "u1", "login"), (20, None, "logout"), (20, None, "logout"), (10, "u1", "x")]
    )
    assert once.marks == twice.marks


def test_a_full_history_forgets_redundant_logins_first_and_ignores_older_marks():
    """Bounded: redundant logins go before any answer changes; once full, a mark older
    than the oldest kept one is ignored (a late event from before it stays anonymous)."""
    rules = IdentityRules(marks_kept=4)
    identity, _ = play(
        [(10, "u1", "x"), (20, "u1", "x"), (30, "u1", "x"), (40, None, "logout"), (50, "u1", "x")],
        rules,
    )
    assert [(m.time_micros, m.user_id) for m in identity.marks] == [
        (10, "u1"),
        (30, "u1"),
        (41, None),
        (50, "u1"),
    ]
    after, decision = resolve_identity(identity, "u2", "login", 5, rules)
    assert after.marks == identity.marks
    assert (decision.user_id, decision.new_link) == ("u2", True)
    _, late = resolve_identity(after, None, "x", 7, rules)
    assert late.user_id is None
