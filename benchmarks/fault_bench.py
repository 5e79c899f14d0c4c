"""The fault suite: the local pipeline under each fault an operator meets, one fresh run each.

Every scenario starts its own pipeline (emulators, both functions, the local GA4
endpoint), replays the same simulated stream (``simulate --people 50 --seed 7``), injects
its fault once a third of the valid events have reached GA4 (the timed GA4 faults: as the
replay starts), and reports what reached GA4 against the truth: distinct events and
requests, duplicates (and how many of them are the documented crash window: GA4 took the
request, the delivery died before the ledger said so), missing, dead-lettered, and the
sessions reproduced exactly. Target: 0 missing and 0 duplicates in every run, except the
crash window, counted.

    .venv/bin/python -m benchmarks.fault_bench            # every scenario but the 5-minute outage
    .venv/bin/python -m benchmarks.fault_bench --long     # with it (adds about 7 minutes)
    .venv/bin/python -m benchmarks.fault_bench --only ga4-503-60s --only firestore-frozen-20s
    .venv/bin/python -m benchmarks.fault_bench --destination data_manager   # through the DM API

``--destination data_manager`` forwards through the Data Manager API (the local GA4
endpoint serves it, with the same faults); its results go to ``faults-data_manager.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from ga4_stitch.ga4_endpoint import is_accepted
from ga4_stitch.pipeline import (
    DESTINATIONS,
    MEASUREMENT_PROTOCOL,
    LocalPipeline,
    PipelineOptions,
    group_members,
)
from ga4_stitch.replay import replay
from ga4_stitch.score import score
from ga4_stitch.simulate import SimulationConfig, simulate

RESULTS = Path(__file__).resolve().parent / "results" / "faults.json"
PEOPLE, SEED = 50, 7


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    inject: Callable[[LocalPipeline], None]
    timed: bool = False
    """Injected as the replay starts (a GA4 outage measured in seconds), not mid-replay."""
    long: bool = False


def _ga4_fault(fault: dict[str, Any]) -> Callable[[LocalPipeline], None]:
    def inject(pipeline: LocalPipeline) -> None:
        request = urllib.request.Request(  # noqa: S310 - the local endpoint on 127.0.0.1
            f"{pipeline.info.ga4_url}/__admin/faults",
            data=json.dumps(fault).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            pass

    return inject


def _kill_forward_worker(pipeline: LocalPipeline) -> None:
    """SIGKILL one worker process of the forward function (functions-framework respawns it)."""
    leader = pipeline.function_pid("forward")
    workers = [pid for pid in group_members(leader) if pid != leader] or [leader]
    os.kill(max(workers), signal.SIGKILL)


def _kill_forward_function(pipeline: LocalPipeline) -> None:
    """SIGKILL the forward function's whole process group (the supervisor restarts it)."""
    os.killpg(pipeline.function_pid("forward"), signal.SIGKILL)


def _freeze_firestore(pipeline: LocalPipeline, seconds: float = 20.0) -> None:
    group = pipeline.emulator_process_group("firestore")
    os.killpg(group, signal.SIGSTOP)
    time.sleep(seconds)
    os.killpg(group, signal.SIGCONT)


SCENARIOS = (
    Scenario("none", "no fault", lambda _: None),
    Scenario(
        "ga4-slow-40",
        "GA4 takes 40 requests but answers after the client timeout (6 s > 5 s)",
        _ga4_fault({"times": 40, "delay_seconds": 6}),
    ),
    Scenario(
        "ga4-503-60s",
        "GA4 answers 503 for 60 s",
        _ga4_fault({"for_seconds": 60, "status": 503}),
        timed=True,
    ),
    Scenario(
        "ga4-429-40s",
        "GA4 answers 429 with Retry-After: 10 for 40 s",
        _ga4_fault({"for_seconds": 40, "status": 429, "retry_after": 10}),
        timed=True,
    ),
    Scenario("firestore-frozen-20s", "Firestore emulator frozen (SIGSTOP) 20 s", _freeze_firestore),
    Scenario(
        "forward-worker-killed", "forward's worker killed (-9) mid-replay", _kill_forward_worker
    ),
    Scenario(
        "forward-function-killed",
        "forward function killed (-9) mid-replay, restarted by the supervisor",
        _kill_forward_function,
    ),
    Scenario(
        "ga4-503-5min",
        "GA4 answers 503 for 5 minutes, then recovers",
        _ga4_fault({"for_seconds": 300, "status": 503}),
        timed=True,
        long=True,
    ),
)


def _accepted(record: Path) -> int:
    """Requests GA4 took so far, through either API."""
    try:
        text = record.read_text()
    except FileNotFoundError:
        return 0
    taken = 0
    for line in text.splitlines():
        try:
            taken += is_accepted(json.loads(line))
        except (ValueError, AttributeError):
            continue  # a line still being written
    return taken


def results_path(destination: str) -> Path:
    """Where a suite's results go: ``faults.json`` for the Measurement Protocol."""
    if destination == MEASUREMENT_PROTOCOL:
        return RESULTS
    return RESULTS.with_name(f"faults-{destination}.json")


def _run(
    scenario: Scenario,
    work: Path,
    valid: int,
    events: Path,
    truth: dict[str, Any],
    *,
    destination: str = MEASUREMENT_PROTOCOL,
) -> dict[str, Any]:
    options = PipelineOptions(
        work_dir=work / "pipeline", emulators_from_environment=False, destination=destination
    )
    with LocalPipeline(options) as pipeline:
        record = Path(pipeline.info.ga4_record)

        def inject() -> None:
            deadline = time.monotonic() + 120
            while not scenario.timed and _accepted(record) < valid // 3:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            scenario.inject(pipeline)

        injector = threading.Thread(target=inject, daemon=True)
        injector.start()
        timeout = 420.0 if scenario.long else 180.0
        summary = replay(pipeline, events, work / "sent.ndjson", timeout=timeout)
        injector.join(30)
        restarts = pipeline.restarts
    sent = [json.loads(line) for line in (work / "sent.ndjson").read_text().splitlines() if line]
    result = score(truth, sent)
    return {
        "scenario": scenario.name,
        "fault": scenario.what,
        "distinct_reached_ga4": summary.sent,
        "ga4_requests": summary.ga4_requests,
        "duplicates": summary.duplicates_sent,
        "duplicates_crash_window": summary.duplicates_after_crash,
        "missing": summary.missing,
        "dead_lettered": summary.dead_lettered,
        "dead_lettered_by_reason": summary.dead_lettered_by_reason,
        "sessions_exact": f"{result.sessions_exact}/{result.true_sessions}",
        "restarts": restarts,
        "seconds": round(summary.seconds, 1),
        "pipeline_lost": summary.pipeline_lost,
    }


def run_suite(
    names: set[str] | None, long: bool, destination: str = MEASUREMENT_PROTOCOL
) -> list[dict[str, Any]]:
    stream = simulate(
        SimulationConfig(people=PEOPLE, seed=SEED, start_micros=time.time_ns() // 1000)
    )
    truth = {record.event_id: record.to_json() for record in stream.truth}
    valid = sum(1 for record in stream.truth if record.valid)
    rows = []
    with TemporaryDirectory(prefix="ga4-stitch-faults-") as tmp:
        events = Path(tmp) / "events.ndjson"
        events.write_text("".join(json.dumps(payload) + "\n" for payload in stream.deliveries))
        for scenario in SCENARIOS:
            if (names and scenario.name not in names) or (scenario.long and not long and not names):
                continue
            print(f"-- {scenario.name}: {scenario.what}", flush=True)
            row = _run(
                scenario, Path(tmp) / scenario.name, valid, events, truth, destination=destination
            )
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| fault | reached GA4 (distinct / requests) | duplicates (crash window) | missing "
        "| dead-lettered | sessions exact |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['fault']} | {r['distinct_reached_ga4']} / {r['ga4_requests']} "
        f"| {r['duplicates']} ({r['duplicates_crash_window']}) | {r['missing']} "
        f"| {r['dead_lettered']} | {r['sessions_exact']} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--long", action="store_true", help="include the 5-minute outage")
    parser.add_argument(
        "--destination",
        choices=DESTINATIONS,
        default=MEASUREMENT_PROTOCOL,
        help="how the forwarder reaches GA4 (default measurement_protocol)",
    )
    args = parser.parse_args()
    rows = run_suite(set(args.only or ()), args.long, args.destination)
    results = results_path(args.destination)
    results.parent.mkdir(parents=True, exist_ok=True)
    summary = {"people": PEOPLE, "seed": SEED, "destination": args.destination, "runs": rows}
    results.write_text(json.dumps(summary, indent=2) + "\n")
    print(format_table(rows))
    print(f"written to {results}")


__all__ = ["SCENARIOS", "Scenario", "format_table", "results_path", "run_suite"]

if __name__ == "__main__":
    main()
