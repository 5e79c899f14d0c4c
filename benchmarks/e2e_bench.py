"""End to end: a simulated stream through the local pipeline (``ga4_stitch.pipeline``)
with ``ga4_stitch.replay``: the raw-events topic on the Pub/Sub emulator, ordered push
delivery to the ``resolve`` function, the enriched topic, push to ``forward``, the local
GA4 endpoint. Both functions run under functions-framework as separate processes.

Two passes, each on an empty database:

- ``burst``: a stream of about 10,000 deliveries published at once; throughput is
  distinct events accounted for (reached GA4 or dead-lettered) per second of wall time,
  and latency includes the time spent queued behind the backlog;
- ``paced``: a smaller stream published at ``PACE_SHARE`` of the burst's throughput, so
  latency is the pipeline's own, publish to GA4 receipt, not the backlog's.

Each pass is also scored against the truth, which checks exactly-once delivery to GA4
end to end (the forwarder's ledger included), and its errors attributed as in the
accuracy benchmark, with the order events reached GA4 standing for the order the
resolver processed them (approximate: the forwarder runs in between). The baseline is a
resolver, not a pipeline, so there is no baseline column here.

The pipeline runs as Terraform deploys it by default: without the BigQuery export's
subscriptions (``enable_bigquery_export`` off), so Pub/Sub fans each enriched event out to
the forward function only and the replay drains no export.

Each pass also reports CPU milliseconds per published delivery of every process the
pipeline runs on (``process_cpu_ms_per_event``): the ``resolve`` and ``forward``
functions (their process groups, functions-framework included) and each emulator (found
by the ``--host-port`` it was started with), from ``/proc/<pid>/stat`` utime + stime.
The functions' figures are what Cloud Run would bill CPU for (``benchmarks/cost_bench.py``);
this process's own CPU (the push loops, the local GA4 endpoint, the replay) is reported
beside them as ``pipeline process``.

The emulator-bound ceiling is the throughput the emulators alone would allow on this
machine if they had every core: ``cores x 1000 / (emulators' CPU ms per delivery)``,
measured in the same pass, so the burst's events per second read as a share of what the
emulators leave possible (they do not bound production, where Firestore and Pub/Sub are
services).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.attribution import attribute
from benchmarks.common import BenchEnv, Stream, make_stream
from benchmarks.cpu import group_cpu_seconds
from benchmarks.report import Row, verdict
from ga4_stitch.pipeline import FUNCTIONS, LocalPipeline, PipelineOptions
from ga4_stitch.replay import ReplaySummary, replay
from ga4_stitch.score import load_sent, score

PACE_SHARE = 0.6
SEED = 31
TARGET_FUNCTION_CPU_MS = 3.0
"""Issue 14: process CPU per delivery of each function, functions-framework included."""
TARGET_EVENTS_PER_SECOND = 100.0
PIPELINE_PROCESS = "pipeline process"


def run(env: BenchEnv, *, quick: bool, work: Path) -> dict[str, Any]:
    people, paced_people = (12, 6) if quick else (280, 20)
    now = time.time_ns() // 1_000
    stream = make_stream(people, seed=SEED, start_micros=now)
    small = make_stream(paced_people, seed=SEED + 1, start_micros=now)
    options = PipelineOptions(
        work_dir=work / "e2e",
        firestore_host=env.firestore_host,
        pubsub_host=env.pubsub_host,
        export=False,
    )
    passes: dict[str, Any] = {}
    with LocalPipeline(options) as pipeline:
        groups = process_groups(pipeline, env)
        before = _cpu(groups)
        burst = _pass(pipeline, stream.deliveries, work / "e2e-burst.ndjson", None)
        cpu = _cpu_per_event(before, _cpu(groups), burst.events_in)
        passes["burst"] = {**_figures(burst, stream), **_ceiling(cpu, burst)}
        rate = PACE_SHARE * (burst.throughput_per_second or 10.0)
        before = _cpu(groups)
        paced = _pass(pipeline, small.deliveries, work / "e2e-paced.ndjson", rate)
        cpu = _cpu_per_event(before, _cpu(groups), paced.events_in)
        passes["paced"] = {
            "rate_per_second": round(rate, 1),
            **_figures(paced, small),
            **_ceiling(cpu, paced),
        }
    return {
        "stream": {"people": people, "seed": SEED, **stream.stats},
        "paced_stream": {"people": paced_people, "seed": SEED + 1, **small.stats},
        "passes": passes,
    }


def process_groups(pipeline: LocalPipeline, env: BenchEnv) -> dict[str, int]:
    """Process group of each process the pipeline runs on: the two functions it started
    (each in its own group, leader first) and the emulators it was given. A function the
    pipeline restarts during a pass takes its CPU with it: the figure is then a floor."""
    groups = {f"{name} function": pipeline.function_pid(name) for name in FUNCTIONS}
    for kind, host in (("firestore", env.firestore_host), ("pubsub", env.pubsub_host)):
        pgid = _group_listening_on(host) if host else None
        if pgid is not None:
            groups[f"{kind} emulator"] = pgid
    return groups


def _group_listening_on(host: str) -> int | None:
    """The process group of the process started with ``--host-port=<host>``."""
    flag = f"--host-port={host}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if flag not in (entry / "cmdline").read_bytes().split(b"\0"):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        return int(fields[2])
    return None


def _cpu(groups: Mapping[str, int]) -> dict[str, float]:
    figures = {name: group_cpu_seconds(pgid) for name, pgid in groups.items()}
    figures[PIPELINE_PROCESS] = time.process_time()
    return figures


def _ceiling(cpu: Mapping[str, float], summary: ReplaySummary) -> dict[str, Any]:
    """The pass's CPU per delivery by process, and its throughput against the
    emulator-bound ceiling (see the module docstring)."""
    cores = os.cpu_count() or 1
    emulators = sum(value for name, value in cpu.items() if name.endswith("emulator"))
    ceiling = cores * 1000 / emulators if emulators > 0 else None
    throughput = summary.throughput_per_second or 0.0
    return {
        "process_cpu_ms_per_event": dict(cpu),
        "cores": cores,
        "emulator_cpu_ms_per_event": round(emulators, 3),
        "emulator_bound_events_per_second": None if ceiling is None else round(ceiling, 1),
        "share_of_emulator_bound": None if not ceiling else round(throughput / ceiling, 3),
    }


def _cpu_per_event(
    before: Mapping[str, float], after: Mapping[str, float], events: int
) -> dict[str, float]:
    per = 1000 / max(1, events)
    return {name: round((after[name] - before[name]) * per, 3) for name in before}


def _pass(
    pipeline: LocalPipeline, events: list[dict[str, Any]], out: Path, rate: float | None
) -> ReplaySummary:
    return replay(pipeline, events, out, timeout=90.0, rate=rate, clear_state=True)


def _figures(summary: ReplaySummary, stream: Stream) -> dict[str, Any]:
    sent = load_sent(Path(summary.out_path))
    payloads: dict[str, dict[str, Any]] = {}
    for payload in stream.deliveries:
        payloads.setdefault(str(payload.get("event_id")), payload)
    keys = (
        "events_in",
        "distinct_events",
        "sent",
        "ga4_requests",
        "duplicates_sent",
        "dead_lettered",
        "dead_lettered_by_reason",
        "missing",
        "duplicate_deliveries",
        "duplicates_suppressed",
        "seconds",
        "throughput_per_second",
        "latency_ms",
        "settled",
    )
    figures = {key: getattr(summary, key) for key in keys}
    figures["score"] = score(stream.truth, sent).to_json()
    figures["attribution"] = attribute(stream.truth, payloads, sent)
    return figures


def rows(result: dict[str, Any]) -> list[Row]:
    burst, paced = result["passes"]["burst"], result["passes"]["paced"]
    events = result["stream"]["deliveries"]
    cpu = burst.get("process_cpu_ms_per_event") or {}
    throughput = round(burst["throughput_per_second"] or 0.0, 1)
    table = [
        Row(
            "e2e",
            f"events/s, {events:,} deliveries published at once",
            "",
            throughput,
            None,
            f">= {TARGET_EVENTS_PER_SECOND:.0f}",
            verdict(throughput >= TARGET_EVENTS_PER_SECOND),
        )
    ]
    ceiling = burst.get("emulator_bound_events_per_second")
    if ceiling:
        table.append(
            Row(
                "e2e",
                f"emulator-bound ceiling events/s ({burst['cores']} cores / "
                f"{burst['emulator_cpu_ms_per_event']:.2f} emulator CPU ms per delivery); "
                "share reached",
                "",
                f"{ceiling:.0f}; {100 * burst['share_of_emulator_bound']:.0f}%",
                None,
                "",
                "",
            )
        )
    for function in ("resolve", "forward"):
        value = cpu.get(f"{function} function")
        if value is not None:
            table.append(
                Row(
                    "e2e",
                    f"{function} function process CPU ms/delivery ({events:,} at once)",
                    "",
                    round(value, 2),
                    None,
                    f"<= {TARGET_FUNCTION_CPU_MS:g}",
                    verdict(value <= TARGET_FUNCTION_CPU_MS),
                )
            )
    if cpu:
        table.append(
            Row(
                "e2e",
                f"CPU ms/delivery by process ({events:,} at once)",
                "",
                " / ".join(f"{name} {value:.2f}" for name, value in cpu.items()),
                None,
                "",
                "",
            )
        )
    for name, figures in (("burst", burst), ("paced", paced)):
        latency = figures["latency_ms"]
        label = (
            f"{events:,} at once"
            if name == "burst"
            else f"{result['paced_stream']['deliveries']:,} paced at {paced['rate_per_second']}/s"
        )
        table.append(
            Row(
                "e2e",
                f"publish-to-GA4 latency p50 / p95 / p99 ms ({label})",
                "",
                " / ".join("-" if latency[k] is None else f"{latency[k]:.0f}" for k in latency),
                None,
                "",
                "",
            )
        )
        scored = figures["score"]
        blame = figures["attribution"]
        table.append(
            Row(
                "e2e",
                f"sessions wrong, not explained by processing order ({label})",
                "",
                blame["sessions_wrong_resolver"] + blame["sessions_with_lost_events"],
                None,
                "0",
                verdict(blame["sessions_wrong_resolver"] + blame["sessions_with_lost_events"] == 0),
            )
        )
        table.append(
            Row(
                "e2e",
                f"sessions exact / duplicates at GA4 / lost ({label})",
                "",
                f"{100 * (scored['session_accuracy'] or 0):.2f}% / "
                f"{scored['duplicates_sent']} / {scored['events_lost']}",
                None,
                "100% / 0 / 0",
                verdict(
                    scored["session_accuracy"] == 1.0
                    and scored["duplicates_sent"] == 0
                    and scored["events_lost"] == 0
                ),
            )
        )
    return table
