"""The warehouse models over what a replay through the local pipeline exported.

A simulated stream goes through ``replay`` on a fresh local pipeline, which drains the
pipeline's stand-ins for the BigQuery export subscriptions into ``SENT.export/``; then
``ga4-stitch warehouse`` with no input builds the dbt models over that export (the last
replay's, recorded in the state directory) and the result is compared with the
simulator's truth as ``tests/warehouse/test_warehouse.py`` compares the in-process one.
Late deliveries are off, as in ``test_pipeline.py``: the online resolver is then exact,
so the export is too. dbt runs in warehouse/.venv (created on first use).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ga4_stitch import warehouse
from ga4_stitch.cli import main
from ga4_stitch.pipeline import LocalPipeline, PipelineOptions
from ga4_stitch.replay import replay
from ga4_stitch.simulate import SimulationConfig, simulate
from tests.warehouse.test_warehouse import (
    check_sessions,
    check_stitched_users,
    check_users,
    valid_truth,
)

pytestmark = pytest.mark.e2e

PEOPLE = 20


def test_the_models_over_a_replays_export_equal_the_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = simulate(
        SimulationConfig(
            people=PEOPLE,
            seed=4,
            start_micros=time.time_ns() // 1000,
            late_rate=0.0,
            very_late_rate=0.0,
        )
    )
    events = tmp_path / "events.ndjson"
    events.write_text("".join(json.dumps(payload) + "\n" for payload in stream.deliveries))
    sent = tmp_path / "sent.ndjson"
    options = PipelineOptions(work_dir=tmp_path / "pipeline", emulators_from_environment=False)
    with LocalPipeline(options) as pipeline:
        summary = replay(pipeline, events, sent, timeout=60)
    assert summary.missing == 0, summary.missing_ids
    assert summary.settled

    export = sent.with_name("sent.ndjson.export")
    assert summary.export_path == str(export)
    rows = {
        table: [json.loads(line) for line in (export / f"{table}.ndjson").read_text().splitlines()]
        for table in warehouse.EXPORT_TABLES
    }
    assert summary.exported == {table: len(rows[table]) for table in rows}
    for table, table_rows in rows.items():
        assert table_rows, f"nothing exported to {table}"
        assert {row["subscription_name"] for row in table_rows} == {warehouse.SUBSCRIPTIONS[table]}
        assert len({row["message_id"] for row in table_rows}) == len(table_rows)
    event_ids = [json.loads(row["data"])["resolved"]["event_id"] for row in rows["enriched_events"]]
    assert set(event_ids) == set(valid_truth(stream))
    assert len(event_ids) > len(set(event_ids)), "the duplicate deliveries were not exported"
    assert "login" in {json.loads(row["data"])["link_kind"] for row in rows["identity_links"]}

    state = tmp_path / "state"
    warehouse.remember_replay_export(state, Path(summary.export_path))  # as `replay` does
    capsys.readouterr()
    assert main(["warehouse", "--state-dir", str(state), "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    database = Path(built["database"])
    assert database == state / "warehouse" / "warehouse.duckdb"
    assert built["stitched_events"]["events"] == len(valid_truth(stream))

    restitchable, _ = check_stitched_users(stream, database)
    assert restitchable > 0
    check_sessions(stream, database)
    check_users(stream, database)
