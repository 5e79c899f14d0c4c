"""The whole pipeline as separate processes: emulators, functions-framework, local GA4.

A simulated stream goes through ``replay`` and is scored against the simulator's ground
truth; afterwards no process the pipeline started may be left, Java children included.
Late deliveries are off: with them an online resolver cannot always know a user or a
session start in time (the truth marks that ceiling), and this test asserts exactness.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ga4_stitch.pipeline import LocalPipeline, PipelineOptions, group_members
from ga4_stitch.replay import replay
from ga4_stitch.score import load_sent, score
from ga4_stitch.simulate import SimulationConfig, simulate

pytestmark = pytest.mark.e2e

PEOPLE = 40
GARBAGE_LINE = 11


def command_name(pid: int) -> str | None:
    """The process's command name, or None once it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = stat.split("(", 1)[1].rsplit(")", 1)
    return None if rest.split()[0] in {"Z", "X"} else name


def java_processes(groups: list[int]) -> list[int]:
    return [pid for group in groups for pid in group_members(group) if command_name(pid) == "java"]


def test_replay_sends_every_valid_event_once_with_the_true_session_and_user(
    tmp_path: Path,
) -> None:
    """Nothing lost or doubled; sessions, numbers, users and canonical clients all exact;
    malformed events dead-lettered with their reasons; no process left afterwards."""
    config = SimulationConfig(
        people=PEOPLE,
        seed=5,
        start_micros=time.time_ns() // 1000,
        late_rate=0.0,
        very_late_rate=0.0,
    )
    stream = simulate(config)
    assert stream.stats["cross_domain_hops"] > 0
    assert stream.stats["duplicate_deliveries"] > 0
    assert stream.stats["events_expected_stitched"] > 0
    lines = [json.dumps(payload) for payload in stream.deliveries]
    lines.insert(GARBAGE_LINE - 1, "{this line is not JSON")
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(lines) + "\n")
    sent = tmp_path / "sent.ndjson"

    options = PipelineOptions(work_dir=tmp_path / "pipeline", emulators_from_environment=False)
    with LocalPipeline(options) as pipeline:
        groups = pipeline.process_groups
        java = java_processes(groups)
        summary = replay(pipeline, events, sent, ordering_key="canonical", timeout=60)

    assert len(java) >= 2, "each emulator runs a Java child"
    assert [pid for pid in java if command_name(pid)] == []
    assert {group: group_members(group) for group in groups} == {group: [] for group in groups}

    assert summary.missing == 0, summary.missing_ids
    assert summary.settled
    assert [number for number, _ in summary.malformed_lines] == [GARBAGE_LINE]
    assert summary.ga4_requests_with_validation_messages == 0
    result = score({record.event_id: record.to_json() for record in stream.truth}, load_sent(sent))
    assert result.events_lost == 0
    assert result.duplicates_sent == 0
    assert result.invalid_sent == 0
    assert result.unknown_sent == 0
    assert result.session_accuracy == 1.0
    assert result.session_inflation == 1.0
    assert result.session_number_exact_rate == 1.0
    assert result.session_id_exact_rate == result.session_id_exact_ceiling == 1.0
    assert result.user_accuracy == 1.0
    assert result.leaked_after_logout == 0
    assert result.canonical_client_accuracy == 1.0

    dead = [json.loads(line) for line in Path(summary.dead_letter_path).read_text().splitlines()]
    expected = {r.event_id: r.expected_reason for r in stream.truth if not r.valid}
    assert {entry["event_id"]: entry["reason"] for entry in dead} == expected
    assert {entry["source"] for entry in dead} == {"resolve"}


def ga4_stitch_command() -> list[str]:
    script = Path(sys.executable).with_name("ga4-stitch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from ga4_stitch.cli import main; raise SystemExit(main())"]


def wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "ga4-stitch run exited early"
        if path.exists():
            return dict(json.loads(path.read_text()))
        time.sleep(0.2)
    raise AssertionError(f"{path} did not appear within {timeout:.0f}s")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_run_stops_every_process_it_started_on_a_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """A SIGINT (even to a background job, which starts with SIGINT ignored) or a SIGTERM
    ends ``ga4-stitch run`` cleanly: exit 0, state file removed, no emulator (nor its Java
    child) or function left."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    log = (tmp_path / "run.log").open("wb")
    command = [*ga4_stitch_command(), "run", "--state-dir", str(tmp_path / "state")]
    process = subprocess.Popen(
        ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        state = wait_for(tmp_path / "state" / "run.json", process, timeout=120)
        groups = [int(group) for group in state["process_groups"]]
        java = java_processes(groups)
        assert len(groups) == 4
        assert len(java) >= 2
        process.send_signal(stop_signal)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "run.log").read_text()
    assert "Pub/Sub emulator" in output
    assert "resolve function" in output
    assert not (tmp_path / "state" / "run.json").exists()
    assert {group: group_members(group) for group in groups} == {group: [] for group in groups}
    assert [pid for pid in java if command_name(pid)] == []
