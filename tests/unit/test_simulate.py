"""The traffic generator: determinism, feature mix, and the ground truth it writes."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ga4_stitch.cli import main
from ga4_stitch.simulate import (
    MINUTE,
    SESSION_TIMEOUT_MICROS,
    IdentityEvent,
    Simulation,
    SimulationConfig,
    TruthRecord,
    assign_true_sessions,
    expected_identities,
    simulate,
)
from shared.domain.crossdomain.linker import check_linker_param, extract_linker_param

START = 1_763_900_000_000_000
WINDOW = 48 * 60 * MINUTE
CONFIG = SimulationConfig(people=300, seed=11, start_micros=START)


@pytest.fixture(scope="module")
def stream() -> Simulation:
    return simulate(CONFIG)


def truth_by_id(stream: Simulation) -> dict[str, TruthRecord]:
    return {record.event_id: record for record in stream.truth}


def valid_by_client(stream: Simulation) -> dict[str, list[TruthRecord]]:
    clients: dict[str, list[TruthRecord]] = defaultdict(list)
    for record in stream.truth:
        if record.valid:
            assert record.client_id is not None
            clients[record.client_id].append(record)
    for records in clients.values():
        records.sort(key=lambda r: (r.time_micros, r.event_id))
    return clients


# --------------------------------------------------------------------------- truth functions


def test_session_starts_again_at_exactly_the_timeout():
    """A gap of exactly 30 minutes opens a new session; one microsecond less does not."""
    sessions = assign_true_sessions(
        [("a", 0), ("b", SESSION_TIMEOUT_MICROS - 1), ("c", 2 * SESSION_TIMEOUT_MICROS - 1)]
    )
    assert sessions["a"] == sessions["b"]
    assert sessions["c"].start_micros == 2 * SESSION_TIMEOUT_MICROS - 1
    assert sessions["c"].number == 2


def test_sessions_follow_event_time_not_input_order():
    """Events given out of time order still split on sorted time."""
    sessions = assign_true_sessions([("late", 10 * MINUTE), ("x", 50 * MINUTE), ("first", 0)])
    assert sessions["late"].start_micros == 0
    assert sessions["first"].number == 1
    assert sessions["x"].number == 2


def brute_force_sessions(events: list[tuple[str, int]]) -> dict[str, tuple[int, int]]:
    """Definition: two events share a session iff no gap >= timeout lies between them."""
    ordered = sorted(events, key=lambda e: (e[1], e[0]))
    result = {}
    for i, (event_id, _) in enumerate(ordered):
        first = i
        while first > 0 and ordered[first][1] - ordered[first - 1][1] < SESSION_TIMEOUT_MICROS:
            first -= 1
        number = 1 + sum(
            ordered[k][1] - ordered[k - 1][1] >= SESSION_TIMEOUT_MICROS for k in range(1, first + 1)
        )
        result[event_id] = (ordered[first][1], number)
    return result


@given(
    st.lists(
        st.integers(min_value=0, max_value=6 * SESSION_TIMEOUT_MICROS),
        max_size=30,
    )
)
def test_true_sessions_match_the_brute_force_definition(times):
    """Sorting and splitting at gaps >= 30 min equals the pairwise definition."""
    events = [(f"e{index:02d}", time) for index, time in enumerate(times)]
    sessions = assign_true_sessions(events)
    expected = brute_force_sessions(events)
    assert {k: (v.start_micros, v.number) for k, v in sessions.items()} == expected


def identity(event_id, minute, user=None, logout=False):
    return IdentityEvent(event_id, minute * MINUTE, user, logout)


def test_own_user_id_wins_over_the_linked_user():
    """An event's own user id is its expected user even when another user is linked."""
    users = expected_identities([identity("a", 0, "u1"), identity("b", 1, "u2")])
    assert users["b"].user_id == "u2"


def test_anonymous_events_inherit_the_latest_login():
    """After a login, anonymous events of the client expect that user."""
    users = expected_identities([identity("anon0", 0), identity("in", 1, "u1"), identity("a", 2)])
    assert users["anon0"].user_id is None
    assert not users["anon0"].after_logout
    assert users["a"].user_id == "u1"


def test_identity_after_logout_is_null_until_next_login():
    """A logout ends the link: later anonymous events expect no user until a new login."""
    users = expected_identities(
        [
            identity("in", 0, "u1"),
            identity("out", 1, "u1", logout=True),
            identity("after", 2),
            identity("again", 3, "u2"),
            identity("later", 4),
        ]
    )
    assert users["out"].user_id == "u1"
    assert users["after"].user_id is None
    assert users["after"].after_logout
    assert users["later"].user_id == "u2"
    assert not users["later"].after_logout


def test_identity_uses_event_time_for_a_late_login():
    """A login listed last but earlier in event time still covers the later events."""
    users = expected_identities([identity("a", 5), identity("in", 1, "u1")])
    assert users["a"].user_id == "u1"


def test_second_person_login_replaces_the_link():
    """On a shared device the latest login decides who anonymous events belong to."""
    users = expected_identities([identity("a", 0, "u1"), identity("b", 1, "u2"), identity("c", 2)])
    assert users["c"].user_id == "u2"


# --------------------------------------------------------------------------- the stream


def test_same_seed_gives_the_identical_stream():
    """Two runs with one seed and start produce the same deliveries and truth."""
    config = replace(CONFIG, people=25)
    first, second = simulate(config), simulate(config)
    assert first.deliveries == second.deliveries
    assert first.truth == second.truth
    assert simulate(replace(config, seed=12)).deliveries != first.deliveries


def test_event_times_lie_in_the_48_hours_before_start(stream):
    """Every event time is within the window, so none exceeds the allowed lateness."""
    times = [p["timestamp_micros"] for p in stream.deliveries]
    numeric = [t for t in times if isinstance(t, int)]
    assert len(numeric) >= len(times) - 20
    assert min(numeric) >= START - WINDOW
    assert max(numeric) < START


def test_features_appear_at_their_expected_rates(stream):
    """A 300-person stream holds every feature, near its configured frequency."""
    stats = stream.stats
    events = stats["events_valid"]
    assert 1.45 <= stats["devices"] / stats["people"] <= 1.85
    assert 1.8 <= stats["true_sessions"] / stats["devices"] <= 3.5
    assert 0.10 <= stats["devices_prefixed_client_id"] / stats["devices"] <= 0.25
    assert 0.02 <= stats["devices_server_managed_client_id"] / stats["devices"] <= 0.12
    assert 0.04 <= stats["delayed_up_to_late_max"] / events <= 0.06
    assert 0.005 <= stats["delayed_up_to_very_late_max"] / events <= 0.016
    assert 0.014 <= stats["duplicate_deliveries"] / events <= 0.027
    assert stats["devices_shared"] >= 5
    assert stats["cross_domain_hops"] >= 30
    assert stats["event_purchase"] >= 50
    assert stats["event_login"] >= 100
    assert stats["event_logout"] >= 20
    assert stats["events_expected_stitched"] >= 200
    assert stats["events_anonymous_after_logout"] >= 50
    assert stats["events_browser_session_wrong"] >= 50
    assert stats["events_out_of_order"] >= 100
    reasons = ("missing_client_id", "malformed_client_id", "missing_event_name", "unparseable_time")
    for reason in reasons:
        assert stats[f"malformed_{reason}"] >= 1
    assert 5 <= stats["events_malformed"] <= 0.01 * events


def test_sessions_hold_2_to_15_events(stream):
    """Every true session has between 2 and 15 events."""
    sizes = Counter(r.session_key for r in stream.truth if r.valid)
    assert min(sizes.values()) >= 2
    assert max(sizes.values()) <= 15


def test_true_sessions_split_at_gaps_of_30_minutes_on_sorted_time(stream):
    """Within a client, consecutive events share a session iff their gap is < 30 min."""
    for records in valid_by_client(stream).values():
        assert records[0].session_number == 1
        assert records[0].session_start_micros == records[0].time_micros
        for before, after in itertools.pairwise(records):
            gap = after.time_micros - before.time_micros
            if gap < SESSION_TIMEOUT_MICROS:
                assert after.session_key == before.session_key
            else:
                assert after.session_number == before.session_number + 1
                assert after.session_start_micros == after.time_micros


def test_generated_gaps_stay_clear_of_the_timeout(stream):
    """Gaps are at most 8 minutes inside a session and at least 35 between sessions."""
    for records in valid_by_client(stream).values():
        for before, after in itertools.pairwise(records):
            gap = after.time_micros - before.time_micros
            assert 5_000_000 <= gap <= 8 * MINUTE or gap >= 35 * MINUTE


def test_event_ids_are_unique_and_duplicates_share_them(stream):
    """Distinct events have distinct ids; a redelivery repeats the whole payload."""
    delivered = defaultdict(list)
    for payload in stream.deliveries:
        delivered[payload["event_id"]].append(payload)
    truth = truth_by_id(stream)
    assert len(truth) == len(stream.truth) == len(delivered)
    duplicated = [copies for copies in delivered.values() if len(copies) > 1]
    assert duplicated
    for copies in duplicated:
        assert all(copy == copies[0] for copy in copies)
    for event_id, copies in delivered.items():
        assert truth[event_id].delivered == len(copies)


def test_hop_landing_carries_a_gl_for_the_first_domain_client(stream):
    """The first event of a payment-domain client carries a valid ``_gl`` naming the
    canonical shop client, and that client is what the truth expects."""
    truth = truth_by_id(stream)
    valid = [p for p in stream.deliveries if truth[p["event_id"]].valid]
    first_event_of_client = {}
    for payload in sorted(valid, key=lambda p: p["timestamp_micros"]):
        first_event_of_client.setdefault(payload["client_id"], payload)
    pay_clients = {p["client_id"] for p in valid if "example-pay.com" in p["page_location"]}
    assert len(pay_clients) >= 30
    for client in pay_clients:
        landing = first_event_of_client[client]
        value = extract_linker_param(landing["page_location"])
        assert value is not None
        check = check_linker_param(
            value, landing["user_agent"], landing["timestamp_micros"] / 1e6,
            language=landing["language"],
        )  # fmt: skip
        record = truth[landing["event_id"]]
        assert check.ok
        assert check.client_id == record.client_id != client
        assert not record.late


def test_payment_domain_events_map_to_the_shop_client(stream):
    """Every payment-domain event's canonical client is a client seen on the shop."""
    truth = truth_by_id(stream)
    shop_clients = {
        p["client_id"].removeprefix("GA1.1.")
        for p in stream.deliveries
        if p.get("page_location", "").startswith("https://shop.") and truth[p["event_id"]].valid
    }
    for payload in stream.deliveries:
        record = truth[payload["event_id"]]
        if record.valid and "example-pay.com" in payload["page_location"]:
            assert record.client_id in shop_clients
            assert record.client_id != payload["client_id"]


def test_landing_events_are_never_delayed():
    """With every other event delayed an hour or more, landings still come first."""
    config = replace(
        CONFIG,
        people=150,
        late_rate=0.0,
        very_late_rate=1.0,
        late_max_seconds=3600,
        very_late_max_seconds=7200,
        duplicate_rate=0.0,
    )
    result = simulate(config)
    position = {p["event_id"]: i for i, p in enumerate(result.deliveries)}
    landings = [p for p in result.deliveries if "_gl=" in p.get("page_location", "")]
    assert landings
    clients = valid_by_client(result)
    truth = truth_by_id(result)
    for landing in landings:
        records = clients[str(truth[landing["event_id"]].client_id)]
        index = [r.event_id for r in records].index(landing["event_id"])
        previous = records[index - 1]
        assert position[landing["event_id"]] < position[previous.event_id]


def test_late_marks_events_delivered_after_a_later_event_of_their_client(stream):
    """``late`` is true exactly when a later (in event time) event of the same canonical
    client was delivered first."""
    position = {}
    for index, payload in enumerate(stream.deliveries):
        position.setdefault(payload["event_id"], index)
    for records in valid_by_client(stream).values():
        for index, record in enumerate(records):
            later_first = any(position[r.event_id] < position[record.event_id]
                              for r in records[index + 1 :])  # fmt: skip
            assert record.late is later_first


def test_session_id_is_unreachable_only_when_a_session_opens_late(stream):
    """A session's true id is marked unreachable iff its first event (in time) was first
    delivered after another event of the same session."""
    position = {}
    for index, payload in enumerate(stream.deliveries):
        position.setdefault(payload["event_id"], index)
    sessions = defaultdict(list)
    for record in stream.truth:
        if record.valid:
            sessions[record.session_key].append(record)
    unreachable = 0
    for records in sessions.values():
        first = min(records, key=lambda r: r.time_micros)
        opened_late = any(position[r.event_id] < position[first.event_id] for r in records)
        assert all(r.session_id_reachable is not opened_late for r in records)
        unreachable += opened_late
    assert 0 < unreachable < 0.1 * len(sessions)


def test_prefixed_client_ids_normalise_to_the_bare_form(stream):
    """``GA1.1.X.Y`` is sent by some devices; the truth names the client ``X.Y``."""
    truth = truth_by_id(stream)
    prefixed = [p for p in stream.deliveries if str(p.get("client_id")).startswith("GA1.1.")]
    assert prefixed
    for payload in prefixed:
        if truth[payload["event_id"]].valid:
            assert truth[payload["event_id"]].client_id == payload["client_id"].removeprefix(
                "GA1.1."
            )


def test_server_managed_client_ids_are_kept_whole(stream):
    """A server-managed ``<base64>.<seconds>`` id is its own canonical client."""
    truth = truth_by_id(stream)
    managed = [p for p in stream.deliveries if p.get("x-ga-mp2-tt") == "internal_cookie"]
    assert managed
    for payload in managed:
        record = truth[payload["event_id"]]
        if record.valid:
            assert record.client_id == payload["client_id"]
            assert not payload["client_id"].split(".")[0].isdigit()


def test_malformed_events_are_invalid_with_their_reason(stream):
    """Each malformed event's truth names the defect it actually carries."""
    truth = truth_by_id(stream)
    seen = Counter()
    for payload in stream.deliveries:
        record = truth[payload["event_id"]]
        if record.valid:
            continue
        reason = record.expected_reason
        seen[reason] += 1
        if reason == "missing_client_id":
            assert not payload.get("client_id")
        elif reason == "malformed_client_id":
            assert payload["client_id"] == "undefined"
        elif reason == "missing_event_name":
            assert "event_name" not in payload
        else:
            assert reason == "unparseable_time"
            assert not isinstance(payload["timestamp_micros"], int)
        assert record.client_id is None
        assert record.session_key is None
    assert set(seen) == {
        "missing_client_id",
        "malformed_client_id",
        "missing_event_name",
        "unparseable_time",
    }


def test_truth_after_logout_is_null_until_a_user_id_reappears(stream):
    """In event time, anonymous events after a logout expect no user."""
    truth = truth_by_id(stream)
    logout_ids = {p["event_id"] for p in stream.deliveries if p.get("event_name") == "logout"}
    own_user = {p["event_id"] for p in stream.deliveries if p.get("user_id")}
    checked = 0
    for records in valid_by_client(stream).values():
        logged_out = False
        for record in records:
            if record.event_id in own_user:
                logged_out = False
            elif logged_out:
                assert record.user_id is None
                assert record.after_logout
                checked += 1
            logged_out = logged_out or record.event_id in logout_ids
    assert checked >= 50
    assert truth  # the stream holds records at all


def test_a_second_person_logs_in_on_shared_devices(stream):
    """On a shared device, a person other than the owner is expected under their own id."""
    shared = 0
    for records in valid_by_client(stream).values():
        owner = records[0].person
        guests = {r.person for r in records} - {owner}
        if guests:
            shared += 1
            own_ids = {f"cust-{int(person.split('-')[1]):06d}" for person in guests}
            assert own_ids & {r.user_id for r in records}
    assert shared >= 5


def test_browser_session_ids_sometimes_disagree(stream):
    """``ga_session_id`` rides along as a string and is wrong for some events."""
    truth = truth_by_id(stream)
    wrong = 0
    for payload in stream.deliveries:
        record = truth[payload["event_id"]]
        if record.valid:
            assert isinstance(payload["ga_session_id"], str)
            assert record.session_start_micros is not None
            wrong += int(payload["ga_session_id"]) != record.session_start_micros // 1_000_000
    assert 0 < wrong < 0.2 * len(stream.deliveries)


def test_zero_rates_give_a_clean_stream_in_time_order():
    """With no delays, duplicates or defects, delivery order is event-time order."""
    config = replace(
        CONFIG, people=30, late_rate=0, very_late_rate=0, duplicate_rate=0, malformed_rate=0
    )
    result = simulate(config)
    times = [p["timestamp_micros"] for p in result.deliveries]
    assert times == sorted(times)
    assert all(record.valid for record in result.truth)
    assert len(result.deliveries) == len(result.truth)


# --------------------------------------------------------------------------- the command


def test_simulate_command_writes_events_and_truth(tmp_path, capsys):
    """``ga4-stitch simulate`` prints NDJSON raw events and writes one truth line per id."""
    truth_path = tmp_path / "truth.ndjson"
    code = main(
        ["simulate", "--people", "5", "--seed", "3", "--start", "2025-11-23T12:00:00Z",
         "--truth", str(truth_path), "--quiet"]
    )  # fmt: skip
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    truth = [json.loads(line) for line in truth_path.read_text().splitlines()]
    assert {e["event_id"] for e in events} == {t["event_id"] for t in truth}
    assert set(truth[0]) >= {
        "event_id", "valid", "expected_reason", "person", "client_id", "user_id",
        "session_key", "session_start_micros", "session_number", "time_micros", "late",
        "after_logout", "session_id_reachable", "delivered",
    }  # fmt: skip


def test_simulate_command_rejects_an_unwritable_truth_path(tmp_path, capsys):
    """A truth path in a missing directory exits 2 with one line on stderr."""
    code = main(
        ["simulate", "--people", "2", "--truth", str(tmp_path / "no" / "t.ndjson"), "--quiet"]
    )
    assert code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
