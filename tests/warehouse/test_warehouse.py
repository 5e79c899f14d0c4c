"""The warehouse models on DuckDB against a simulated stream's ground truth.

The export rows come from running the resolver in-process over a simulated stream (late,
duplicated and disordered deliveries, shared devices, logouts, cross-domain hops): the
enriched events and identity links the BigQuery subscriptions would write. The first half
(by publish time) is built from scratch, the rest added by an incremental run, and the
result must equal the truth: every anonymous event before a client's first login gets
that login's user, none after a logout, sessions are the true ones, and the breakage
counts are the browser's own session ids against the true sessions.

dbt runs in its own environment (warehouse/.venv, created on first use from
warehouse/requirements.txt).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ga4_stitch import warehouse
from ga4_stitch.simulate import Simulation, SimulationConfig, TruthRecord, simulate

START = 1_763_800_000_000_000
PEOPLE = 60


@pytest.fixture(scope="module")
def stream() -> Simulation:
    return simulate(SimulationConfig(people=PEOPLE, seed=3, start_micros=START))


@pytest.fixture(scope="module")
def built(stream: Simulation, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The models after a full build of the first half of the export and an incremental
    run over the rest."""
    home = tmp_path_factory.mktemp("warehouse")
    export = warehouse.resolve_in_process(stream.deliveries, environ={})
    times = sorted(row.publish_time_micros for row in export["enriched_events"])
    cut = times[len(times) // 2]
    first = {t: [r for r in rows if r.publish_time_micros < cut] for t, rows in export.items()}
    rest = {t: [r for r in rows if r.publish_time_micros >= cut] for t, rows in export.items()}
    database = home / "warehouse.duckdb"
    results = []
    for name, part, append in (("first", first, False), ("rest", rest, True)):
        warehouse.write_export(part, home / name)
        warehouse.load_export(database, home / name, append=append)
        arguments = ["build"] if append else ["build", "--full-refresh"]
        results.append(warehouse.run_dbt(arguments, database, work_dir=home / "dbt"))
    return {"database": database, "export": export, "results": results}


def valid_truth(stream: Simulation) -> dict[str, TruthRecord]:
    return {record.event_id: record for record in stream.truth if record.valid}


def first_payloads(stream: Simulation) -> dict[str, dict[str, Any]]:
    payloads: dict[str, dict[str, Any]] = {}
    for payload in stream.deliveries:
        payloads.setdefault(str(payload.get("event_id")), payload)
    return payloads


def test_both_builds_succeed_with_every_dbt_test_passing(built: dict[str, Any]) -> None:
    for result in built["results"]:
        assert result.success, (result.failed(), result.log[-3000:])
        assert result.failed() == []
        kinds = {node["resource_type"] for node in result.nodes}
        assert {"model", "test"} <= kinds


def test_the_export_has_redeliveries_links_and_every_valid_event(
    stream: Simulation, built: dict[str, Any]
) -> None:
    rows = built["export"]["enriched_events"]
    event_ids = [json.loads(row.data)["resolved"]["event_id"] for row in rows]
    assert set(event_ids) == set(valid_truth(stream))
    assert len(event_ids) > len(set(event_ids)), "no redelivery in the export"
    kinds = {json.loads(row.data)["link_kind"] for row in built["export"]["identity_links"]}
    assert {"login", "linker"} <= kinds


def check_stitched_users(stream: Simulation, database: Path) -> tuple[int, int]:
    """Every restitchable pre-login event got its client's first login's user (source
    ``backward``), none after a logout, every other event the user the truth states;
    (restitchable events, events after a logout)."""
    truth = valid_truth(stream)
    rows = {
        row["event_id"]: row for row in warehouse.query(database, "select * from stitched_events")
    }
    assert set(rows) == set(truth)
    first_login: dict[str, TruthRecord] = {}
    for record in sorted(truth.values(), key=lambda r: (r.time_micros or 0, r.event_id)):
        if record.user_id is not None and record.client_id is not None:
            first_login.setdefault(record.client_id, record)
    restitchable = restitched = after_logout = leaked = wrong = 0
    for event_id, record in truth.items():
        stitched = rows[event_id]["stitched_user_id"]
        login = first_login.get(str(record.client_id))
        before_login = login is not None and (record.time_micros or 0, event_id) < (
            login.time_micros or 0,
            login.event_id,
        )
        if record.user_id is None and not record.after_logout and before_login:
            assert login is not None
            restitchable += 1
            restitched += stitched == login.user_id
            assert rows[event_id]["stitched_user_source"] == "backward"
        elif record.after_logout:
            after_logout += 1
            leaked += stitched is not None
        else:
            wrong += stitched != record.user_id
    assert (restitched, leaked, wrong) == (restitchable, 0, 0)
    return restitchable, after_logout


def test_stitched_users_equal_the_truth_restitched_back_to_the_first_login(
    stream: Simulation, built: dict[str, Any]
) -> None:
    """100% of the restitchable pre-login events get their user, none across a logout,
    every other event the user the truth states."""
    restitchable, after_logout = check_stitched_users(stream, built["database"])
    assert restitchable > 50
    assert after_logout > 5


def check_sessions(stream: Simulation, database: Path) -> None:
    """Same partition of events into sessions; counts and duration from event time; the
    traffic source the truth states, except for sessions whose first event arrived after
    another of theirs (the resolver keeps the source a session was opened with)."""
    truth = valid_truth(stream)
    keys = {
        row["event_id"]: row["session_key"]
        for row in warehouse.query(database, "select event_id, session_key from stitched_events")
    }
    model: dict[str, set[str]] = defaultdict(set)
    expected: dict[str, set[str]] = defaultdict(set)
    for event_id, record in truth.items():
        model[keys[event_id]].add(event_id)
        expected[str(record.session_key)].add(event_id)
    assert sorted(map(sorted, model.values())) == sorted(map(sorted, expected.values()))
    sessions = {
        row["session_key"]: row for row in warehouse.query(database, "select * from sessions")
    }
    assert set(sessions) == set(model)
    for key, events in model.items():
        times = [truth[event_id].time_micros or 0 for event_id in events]
        row = sessions[key]
        assert row["events"] == len(events)
        assert row["duration_seconds"] == pytest.approx((max(times) - min(times)) / 1e6)
        first = truth[min(events, key=lambda e: (truth[e].time_micros or 0, e))]
        assert first.session_source is not None
        if not first.session_id_reachable:
            continue  # opened by a later event: the source it was opened with stays
        assert (row["source"], row["medium"], row["campaign"]) == (
            first.session_source["source"],
            first.session_source["medium"],
            first.session_source["campaign"],
        )


def test_sessions_are_the_true_sessions(stream: Simulation, built: dict[str, Any]) -> None:
    check_sessions(stream, built["database"])
    engaged = [
        row["engaged"] for row in warehouse.query(built["database"], "select * from sessions")
    ]
    assert 0 < sum(engaged) < len(engaged)


def test_breakage_counts_the_browser_session_ids_against_the_true_sessions(
    stream: Simulation, built: dict[str, Any]
) -> None:
    truth = valid_truth(stream)
    payloads = first_payloads(stream)
    browser_ids: dict[str, set[int]] = defaultdict(set)
    server_sessions: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    for event_id, record in truth.items():
        payload = payloads[event_id]
        browser_id = int(payload["ga_session_id"])
        browser_ids[str(record.session_key)].add(browser_id)
        key = (str(record.client_id), payload["x-ga-measurement_id"], browser_id)
        server_sessions[key].add(str(record.session_key))
    split = sum(len(ids) > 1 for ids in browser_ids.values())
    merged = sum(len(keys) > 1 for keys in server_sessions.values())
    figures = warehouse.summary(built["database"])["session_breakage"]
    assert split > 0
    assert figures["server_sessions"] == len(browser_ids)
    assert figures["split"] == split
    assert figures["browser_sessions"] == len(server_sessions)
    assert figures["merged"] == merged
    assert figures["breakage_rate"] == pytest.approx(figures["broken"] / len(browser_ids))
    days = warehouse.query(built["database"], "select distinct breakage_date from session_breakage")
    assert len(days) >= 2


def check_users(stream: Simulation, database: Path) -> None:
    """One ``users`` row per true user."""
    truth = valid_truth(stream)
    users = warehouse.query(database, "select * from users")
    expected = {record.user_id for record in truth.values() if record.user_id}
    assert {row["stitched_user_id"] for row in users} == expected
    assert len(users) == len(expected)
    assert all(row["first_seen_at"] <= row["last_seen_at"] for row in users)


def test_users_count_each_stitched_user_once(stream: Simulation, built: dict[str, Any]) -> None:
    check_users(stream, built["database"])


def test_the_browser_case_expression_names_the_truth_browser(
    stream: Simulation, built: dict[str, Any]
) -> None:
    """Breakage is reported per browser: the user-agent case expression agrees with the
    simulator's catalogue on every event (Android Webview kept apart from Chrome)."""
    truth = valid_truth(stream)
    rows = warehouse.query(built["database"], "select event_id, browser from stitched_events")
    wrong = [(row["browser"], truth[row["event_id"]].browser) for row in rows]
    assert [pair for pair in wrong if pair[0] != pair[1]] == []
