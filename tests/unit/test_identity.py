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
