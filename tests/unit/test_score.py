"""The scorer: what the events that reached GA4 get right against the ground truth."""

from __future__ import annotations

import json

import pytest

from ga4_stitch.cli import main
from ga4_stitch.score import score

MINUTE = 60_000_000
T0 = 1_763_800_000_000_000


def record(event_id, client, start_minute, number, minute, *, user=None, after_logout=False):
    start = T0 + start_minute * MINUTE
    return {
        "event_id": event_id,
        "valid": True,
        "expected_reason": None,
        "person": "person-00001",
        "client_id": client,
        "user_id": user,
        "after_logout": after_logout,
        "session_key": f"{client}|{start}",
        "session_start_micros": start,
        "session_number": number,
        "time_micros": T0 + minute * MINUTE,
        "late": False,
        "session_id_reachable": True,
        "delivered": 1,
    }


@pytest.fixture
def truth():
    records = [
        record("a1", "100.1", 0, 1, 0),
        record("a2", "100.1", 0, 1, 5),
        record("a3", "100.1", 0, 1, 10, user="u1"),
        record("b1", "100.1", 120, 2, 120, user="u1"),
        record("b2", "100.1", 120, 2, 123, user="u1"),
        record("b3", "100.1", 120, 2, 126, after_logout=True),
        record("c1", "200.2", 30, 1, 30),
        record("c2", "200.2", 30, 1, 31),
        {"event_id": "bad", "valid": False, "expected_reason": "missing_client_id",
         "client_id": None, "user_id": None, "session_key": None},
    ]  # fmt: skip
    return {r["event_id"]: r for r in records}


def perfect(truth):
    return [
        {
            "event_id": r["event_id"],
            "client_id": r["client_id"],
            "user_id": r["user_id"],
            "session_id": r["session_start_micros"] // 1_000_000,
            "session_number": r["session_number"],
            "request": {"client_id": r["client_id"], "events": []},
        }
        for r in truth.values()
        if r["valid"]
    ]


def test_perfect_sent_scores_full_marks(truth):
    """Sending exactly the truth gives 100% on every rate and nothing lost or doubled."""
    result = score(truth, perfect(truth))
    assert result.events_expected == result.events_sent == 8
    assert result.events_lost == result.duplicates_sent == result.invalid_sent == 0
    assert result.true_sessions == result.produced_sessions == result.sessions_exact == 3
    assert result.session_accuracy == result.session_inflation == 1.0
    assert result.session_id_exact_rate == result.session_number_exact_rate == 1.0
    assert result.user_accuracy == result.canonical_client_accuracy == 1.0
    assert result.leaked_after_logout == 0


def test_dropped_event_counts_as_lost(truth):
    """A valid event that never reached GA4 is lost and breaks its session's match."""
    sent = [line for line in perfect(truth) if line["event_id"] != "a2"]
    result = score(truth, sent)
    assert result.events_lost == 1
    assert result.sessions_exact == 2
    assert result.user_accuracy == 1.0


def test_duplicated_line_counts_as_duplicate(truth):
    """A SENT line repeated for one event id counts one duplicate, not a second event."""
    sent = perfect(truth)
    sent.append(dict(sent[0]))
    result = score(truth, sent)
    assert result.duplicates_sent == result.events_duplicated == 1
    assert result.events_sent == 8
    assert result.session_accuracy == 1.0


def test_split_session_lowers_accuracy_and_raises_inflation(truth):
    """Starting a new session mid-way loses that session and inflates the count."""
    sent = perfect(truth)
    for line in sent:
        if line["event_id"] == "a3":
            line["session_id"] = (T0 + 10 * MINUTE) // 1_000_000
    result = score(truth, sent)
    assert result.sessions_exact == 2
    assert result.session_accuracy == pytest.approx(2 / 3)
    assert result.session_inflation == pytest.approx(4 / 3)
    assert result.session_id_exact_rate == pytest.approx(7 / 8)


def test_user_sent_after_logout_counts_as_a_leak(truth):
    """An event after a logout sent with the old user is a leak and a wrong attribution."""
    sent = perfect(truth)
    for line in sent:
        if line["event_id"] == "b3":
            line["user_id"] = "u1"
    result = score(truth, sent)
    assert result.leaked_after_logout == 1
    assert result.user_accuracy == pytest.approx(7 / 8)


def test_string_session_ids_of_a_baseline_score_without_error(truth):
    """A baseline's string session ids group sessions but never match the GA4 id."""
    sent = perfect(truth)
    for line in sent:
        line["session_id"] = f"{line['client_id']}.{line['session_id']}.0.123"
    result = score(truth, sent)
    assert result.session_accuracy == 1.0
    assert result.session_id_exact_rate == 0.0


def test_ceiling_excludes_sessions_whose_first_event_arrived_late(truth):
    """Events of a session opened by a later event lower the reachable session-id rate."""
    for event_id in ("c1", "c2"):
        truth[event_id]["session_id_reachable"] = False
    result = score(truth, perfect(truth))
    assert result.session_id_exact_ceiling == pytest.approx(6 / 8)


def test_forwarded_invalid_and_unknown_events_are_counted(truth):
    """Events that should have been dead-lettered, or are not in the truth, are reported."""
    sent = [*perfect(truth), {"event_id": "bad"}, {"event_id": "stranger"}]
    result = score(truth, sent)
    assert result.invalid_sent == 1
    assert result.unknown_sent == 1


def test_uncanonical_client_lowers_client_accuracy(truth):
    """A payment-domain client left unaliased counts against canonical client accuracy."""
    sent = perfect(truth)
    sent[-1]["client_id"] = "999.9"
    result = score(truth, sent)
    assert result.canonical_client_accuracy == pytest.approx(7 / 8)
    assert result.sessions_exact == 2


def write_ndjson(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_score_command_prints_json(tmp_path, truth, capsys):
    """``ga4-stitch score SENT --truth T --json`` prints the score as one JSON object."""
    write_ndjson(tmp_path / "truth.ndjson", truth.values())
    write_ndjson(tmp_path / "sent.ndjson", perfect(truth))
    code = main(
        ["score", str(tmp_path / "sent.ndjson"), "--truth", str(tmp_path / "truth.ndjson"),
         "--json"]
    )  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["session_accuracy"] == 1.0


def test_score_command_rejects_a_bad_line_in_one_line(tmp_path, truth, capsys):
    """A SENT line that is not JSON exits 2 naming the file and line."""
    write_ndjson(tmp_path / "truth.ndjson", truth.values())
    (tmp_path / "sent.ndjson").write_text('{"event_id": "a1"}\nnot json\n')
    code = main(["score", str(tmp_path / "sent.ndjson"), "--truth", str(tmp_path / "truth.ndjson")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].endswith("sent.ndjson:2: not JSON (Expecting value)")


def test_score_command_rejects_a_missing_file(tmp_path, capsys):
    """A truth file that does not exist exits 2 with one line on stderr."""
    (tmp_path / "sent.ndjson").write_text("")
    code = main(["score", str(tmp_path / "sent.ndjson"), "--truth", str(tmp_path / "none")])
    assert code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
