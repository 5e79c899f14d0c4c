"""The whole pipeline forwarding through the Data Manager API to the local GA4 endpoint.

A small simulated stream goes through ``replay`` with ``destination="data_manager"``: the
forward function calls the official client, pointed by its endpoint option at the local
GA4 endpoint's ``/v1/events:ingest``, which refuses what the API refuses and records what
GA4 took. What GA4's reports would show must match the truth on every dimension, with the events
batched into fewer requests than events.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ga4_stitch.parity import parity
from ga4_stitch.pipeline import LocalPipeline, PipelineOptions
from ga4_stitch.replay import replay
from ga4_stitch.score import load_sent
from ga4_stitch.simulate import SimulationConfig, simulate

pytestmark = pytest.mark.e2e

PEOPLE = 30


def test_a_stream_forwarded_through_the_data_manager_api_reaches_full_parity(
    tmp_path: Path,
) -> None:
    """Nothing lost or doubled; every report dimension 100% against the truth; batched."""
    config = SimulationConfig(
        people=PEOPLE,
        seed=11,
        start_micros=time.time_ns() // 1000,
        late_rate=0.0,
        very_late_rate=0.0,
    )
    stream = simulate(config)
    events = tmp_path / "events.ndjson"
    events.write_text("".join(json.dumps(payload) + "\n" for payload in stream.deliveries))
    sent = tmp_path / "sent.ndjson"
    options = PipelineOptions(
        work_dir=tmp_path / "pipeline",
        emulators_from_environment=False,
        destination="data_manager",
    )

    with LocalPipeline(options) as pipeline:
        summary = replay(pipeline, events, sent, timeout=45)
        record = Path(pipeline.info.ga4_record).read_text().splitlines()

    lines = [json.loads(line) for line in record]
    paths = {line["path"] for line in lines}
    assert paths == {"/v1/events:ingest"}
    # Batching: the forwarder's concurrent deliveries share requests (one line per event).
    requests = len({line["request_id"] for line in lines})
    assert requests < len(lines)
    assert summary.missing == 0, summary.missing_ids
    assert summary.duplicates_sent == 0
    assert summary.sent > 0
    truth = {record.event_id: record.to_json() for record in stream.truth}
    result = parity(truth, load_sent(sent))
    shares = {row.dimension: row.share for row in result.dimensions if row.compared}
    assert shares, "nothing compared"
    assert shares == dict.fromkeys(shares, 1.0), result.to_json()
