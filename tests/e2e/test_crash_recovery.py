"""The forward function killed mid-replay: supervised, redelivered, nothing lost or doubled.

``SIGKILL`` to the forward function's whole process group while events stream through it.
The pipeline restarts it; the push loop nacks the pushes that died with it and retries
them after the backoff; nothing was written for them before their send, so the first
redelivery reads the ledger and sends (or skips the events whose entry was written before
the kill). The backoff is scaled down (1 s doubling to 4 s, 20 attempts) so the
redeliveries come within the test's time; the production policy's arithmetic is in
``tests/unit/test_delivery.py``.

Expected: every valid event reaches GA4; the only duplicates are events whose crashed
delivery had already been answered by GA4 before the ledger recorded it (sent again by
the redelivery: ``duplicates_after_crash``, counted, at most one per delivery the kill
hit); nothing is dead-lettered for attempts.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from ga4_stitch.pipeline import DeliveryPolicy, LocalPipeline, PipelineOptions
from ga4_stitch.replay import replay
from ga4_stitch.simulate import SimulationConfig, simulate

pytestmark = pytest.mark.e2e

FAST_RETRIES = DeliveryPolicy(
    ack_deadline_seconds=60,
    minimum_backoff_seconds=1,
    maximum_backoff_seconds=4,
    max_delivery_attempts=20,
)


def accepted_requests(record: Path) -> int:
    try:
        lines = record.read_text().splitlines()
    except FileNotFoundError:
        return 0
    return sum('"/mp/collect"' in line and '"status":204' in line for line in lines)


def test_killing_the_forward_function_mid_replay_loses_nothing(tmp_path: Path) -> None:
    stream = simulate(
        SimulationConfig(
            people=12,
            seed=11,
            start_micros=time.time_ns() // 1000,
            late_rate=0.0,
            very_late_rate=0.0,
        )
    )
    events = tmp_path / "events.ndjson"
    events.write_text("".join(json.dumps(payload) + "\n" for payload in stream.deliveries))
    invalid = {record.event_id for record in stream.truth if not record.valid}
    valid = len(stream.truth) - len(invalid)
    options = PipelineOptions(
        work_dir=tmp_path / "pipeline", emulators_from_environment=False, delivery=FAST_RETRIES
    )
    killed: list[int] = []
    with LocalPipeline(options) as pipeline:
        record = Path(pipeline.info.ga4_record)

        def kill_mid_replay() -> None:
            deadline = time.monotonic() + 60
            while accepted_requests(record) < valid // 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            pid = pipeline.function_pid("forward")
            os.killpg(pid, signal.SIGKILL)
            killed.append(pid)

        killer = threading.Thread(target=kill_mid_replay, daemon=True)
        killer.start()
        summary = replay(pipeline, events, tmp_path / "sent.ndjson", timeout=45)
        killer.join(5)
        restarts = pipeline.restarts
        forward_stats = pipeline.push_loops["forward"].stats

    assert killed, "the forward function was never killed"
    assert restarts == {"forward": 1}
    assert summary.pipeline_lost is None
    assert summary.missing == 0, summary.missing_ids
    assert summary.sent == valid
    assert set(summary.dead_lettered_by_reason) <= {
        "missing_client_id",
        "malformed_client_id",
        "missing_event_name",
        "unparseable_time",
    }
    assert summary.dead_lettered == len(invalid)
    assert forward_stats.dead_lettered == 0
    assert forward_stats.nacked > 0, "the kill hit no delivery in flight"
    assert summary.duplicates_sent == summary.duplicates_after_crash
    assert summary.duplicates_after_crash <= forward_stats.nacked
    assert summary.duplicates_suppressed >= 0
