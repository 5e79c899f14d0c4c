"""What every benchmark shares: the emulator it runs on, generated streams, the designs
by name, and the figures one run of a stream yields.

Every run starts on an empty Firestore database (``clear_firestore``) under its own
collection prefix, so neither design sees the other's documents or an earlier run's.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from benchmarks.cpu import CpuMark
from benchmarks.delivery import Run, deliver, percentile
from benchmarks.designs import (
    PROJECT,
    DesignFactory,
    RecordingPublisher,
    baseline_factory,
    stitch_factory,
)
from benchmarks.rpc_counter import RpcCounter, per_event
from ga4_stitch.emulators import clear_firestore
from ga4_stitch.simulate import SimulationConfig, simulate

START_MICROS = 1_763_800_000_000_000
"""The simulated "now": every stream's events lie in the 48 hours before it."""

CELLS = (
    ("sequential", "baseline"),
    ("sequential", "stitch"),
    ("ordered", "baseline"),
    ("ordered", "stitch"),
    ("ordered", "stitch-instances"),
    ("unordered", "baseline"),
    ("unordered", "stitch"),
    ("unordered", "stitch-instances"),
)
"""Delivery mode x design, each measured on the same stream (see docs/benchmarks.md)."""
WORKERS = 8


@dataclass
class BenchEnv:
    """The running emulators a benchmark uses (hosts as ``*_EMULATOR_HOST`` hold them)."""

    firestore_host: str
    pubsub_host: str | None = None
    firestore_pgid: int | None = None
    """The Firestore emulator's process group, for its CPU time."""
    project: str = PROJECT
    _prefixes: itertools.count[int] = field(default_factory=itertools.count)

    def fresh_prefix(self, name: str) -> str:
        """An empty database and a collection prefix nobody used before."""
        clear_firestore(self.firestore_host, self.project)
        return f"bench{next(self._prefixes)}_{name.replace('-', '_')}_"


@dataclass(frozen=True)
class Stream:
    config: SimulationConfig
    deliveries: list[dict[str, Any]]
    truth: dict[str, dict[str, Any]]
    stats: dict[str, int]

    @property
    def now_micros(self) -> int:
        return self.config.start_micros


def make_stream(people: int, seed: int, start_micros: int = START_MICROS, **options: Any) -> Stream:
    """A simulated stream (default rates: 1% up to 2 h late, 5% up to 3 min, 2% duplicated
    deliveries, 5% shared devices, logins, logouts and cross-domain hops)."""
    config = SimulationConfig(people=people, seed=seed, start_micros=start_micros, **options)
    simulation = simulate(config)
    truth = {record.event_id: record.to_json() for record in simulation.truth}
    return Stream(config, simulation.deliveries, truth, simulation.stats)


def design_factory(
    design: str, env: BenchEnv, counter: RpcCounter, now_micros: int
) -> tuple[DesignFactory, RecordingPublisher]:
    prefix = env.fresh_prefix(design)
    publisher = RecordingPublisher()
    if design == "baseline":
        return baseline_factory(counter, prefix), publisher
    factory = stitch_factory(
        counter,
        prefix,
        now_micros,
        publisher,
        per_worker=design == "stitch-instances",
    )
    return factory, publisher


@dataclass(frozen=True)
class Measured:
    run: Run
    counter: RpcCounter
    cpu_ms_per_event: dict[str, float]


def run_design(env: BenchEnv, stream: Stream, design: str, mode: str, workers: int = 8) -> Measured:
    """One pass of ``stream`` through ``design`` on an empty database."""
    counter = RpcCounter()
    factory, _ = design_factory(design, env, counter, stream.now_micros)
    before = CpuMark.now(env.firestore_pgid)
    run = deliver(stream.deliveries, factory, mode, workers)
    cpu = CpuMark.now(env.firestore_pgid).since(before, run.deliveries)
    return Measured(run, counter, cpu)


def speed_figures(measured: Measured) -> dict[str, Any]:
    """Throughput, latency, CPU and Firestore RPCs of one run (per delivery, dead letters
    and redeliveries included, as a function instance would see them)."""
    run, counter = measured.run, measured.counter
    return {
        "mode": run.mode,
        "workers": run.workers,
        "deliveries": run.deliveries,
        "seconds": round(run.elapsed, 3),
        "events_per_second": round(run.events_per_second, 1),
        "latency_ms_p50": round(1000 * percentile(run.latencies, 0.50), 2),
        "latency_ms_p99": round(1000 * percentile(run.latencies, 0.99), 2),
        "cpu_ms_per_event": measured.cpu_ms_per_event,
        "rpcs_per_event": {
            method: round(value, 4)
            for method, value in per_event(counter.calls(), run.deliveries).items()
        },
        "rpcs": dict(counter.calls()),
        "rpc_failures": dict(counter.failures()),
        "bytes_per_write": round(counter.bytes_per_write(), 1),
        "redeliveries": run.redeliveries,
        "lost": run.lost,
        "crashes": dict(run.crashes),
        "statuses": dict(run.statuses),
    }


def quiet_logs() -> None:
    """The runtime's INFO logs are off (the baseline writes none); warnings are counted
    by the RPC failures instead of printed."""
    root = logging.getLogger("ga4_stitch")
    root.setLevel(logging.ERROR)
    root.propagate = False
    root.addHandler(logging.NullHandler())
