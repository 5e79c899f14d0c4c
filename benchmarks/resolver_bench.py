"""Resolver cost and speed, in-process on the Firestore emulator, both designs on one stream.

Cells: each design in each delivery mode (``sequential``; 8 workers ``ordered`` by
client id; 8 workers ``unordered``), ga4-stitch both as one shared instance and as one
instance per worker. The cells run interleaved (baseline and ga4-stitch side by side per
mode, the order reversed every other round so neither always goes first), the whole
matrix ``rounds`` times after a warm-up pass that lets the emulator's JVM compile
its hot paths; throughput, latency and CPU are the median over rounds, RPCs the mean.
CPU per event (this process plus the emulator) is the figure the machine's noise moves
least; events per second is what a user feels.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CELLS,
    WORKERS,
    BenchEnv,
    Stream,
    make_stream,
    run_design,
    speed_figures,
)
from benchmarks.report import Row, ratio, verdict


def run(env: BenchEnv, *, quick: bool, work: Path) -> dict[str, Any]:
    people, rounds = (15, 1) if quick else (40, 3)
    stream = make_stream(people, seed=11)
    warm_up = make_stream(8 if quick else 30, seed=99)
    for mode, design in CELLS[:4]:
        run_design(env, warm_up, design, mode, WORKERS)
    rounds_figures = [
        _round(env, stream, CELLS if number % 2 == 0 else CELLS[::-1]) for number in range(rounds)
    ]
    cells = {key: _combine([each[key] for each in rounds_figures]) for key in rounds_figures[0]}
    return {
        "stream": {"people": people, "seed": 11, **_stream_size(stream)},
        "workers": WORKERS,
        "rounds": rounds,
        "cells": cells,
        "per_round": rounds_figures,
    }


def _round(
    env: BenchEnv, stream: Stream, cells: tuple[tuple[str, str], ...]
) -> dict[str, dict[str, Any]]:
    figures = {}
    for mode, design in cells:
        figures[f"{design}/{mode}"] = speed_figures(run_design(env, stream, design, mode, WORKERS))
    return figures


def _combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median throughput and latency over rounds; everything else from the first round
    except RPCs per event, averaged."""
    combined = dict(rounds[0])
    for key in ("events_per_second", "latency_ms_p50", "latency_ms_p99", "seconds"):
        combined[key] = round(statistics.median(r[key] for r in rounds), 2)
    combined["cpu_ms_per_event"] = {
        side: round(statistics.median(r["cpu_ms_per_event"][side] for r in rounds), 3)
        for side in rounds[0]["cpu_ms_per_event"]
    }
    methods = {m for r in rounds for m in r["rpcs_per_event"]}
    combined["rpcs_per_event"] = {
        m: round(statistics.mean(r["rpcs_per_event"].get(m, 0.0) for r in rounds), 4)
        for m in sorted(methods)
    }
    combined["events_per_second_rounds"] = [r["events_per_second"] for r in rounds]
    return combined


def _stream_size(stream: Stream) -> dict[str, int]:
    keys = ("deliveries", "events_valid", "clients", "duplicate_deliveries", "events_out_of_order")
    return {key: stream.stats[key] for key in keys}


def rows(result: dict[str, Any]) -> list[Row]:
    cells = result["cells"]
    table: list[Row] = []
    for mode in ("sequential", "ordered", "unordered"):
        base = cells[f"baseline/{mode}"]
        label = "1 worker" if mode == "sequential" else f"{result['workers']} workers, {mode}"
        designs = ["stitch"] if mode == "sequential" else ["stitch", "stitch-instances"]
        for design in designs:
            who = label if design == "stitch" else f"{label}, instance per worker"
            table += _cell_rows(base, cells[f"{design}/{mode}"], who)
    base, ours = cells["baseline/sequential"], cells["stitch/sequential"]
    table.append(
        Row(
            "resolver",
            "bytes sent per document written (1 worker)",
            base["bytes_per_write"],
            ours["bytes_per_write"],
            ratio(ours["bytes_per_write"], base["bytes_per_write"]),
            "",
            "",
        )
    )
    return table


def _cell_rows(base: dict[str, Any], ours: dict[str, Any], who: str) -> list[Row]:
    rpc_base, rpc_ours = base["rpcs_per_event"]["total"], ours["rpcs_per_event"]["total"]
    eps = ratio(ours["events_per_second"], base["events_per_second"])
    cpu_base, cpu_ours = base["cpu_ms_per_event"]["total"], ours["cpu_ms_per_event"]["total"]
    return [
        Row(
            "resolver",
            f"Firestore RPCs/event ({who})",
            rpc_base,
            rpc_ours,
            ratio(rpc_ours, rpc_base),
            "<= 2.0",
            verdict(rpc_ours <= 2.0),
        ),
        Row(
            "resolver",
            f"events/s ({who})",
            base["events_per_second"],
            ours["events_per_second"],
            eps,
            ">= 1.5x",
            verdict(eps is not None and eps >= 1.5),
        ),
        Row(
            "resolver",
            f"CPU ms/event, this process + emulator ({who})",
            cpu_base,
            cpu_ours,
            ratio(cpu_ours, cpu_base),
            "",
            "",
        ),
        Row(
            "resolver",
            f"latency p50 / p99 ms ({who})",
            f"{base['latency_ms_p50']} / {base['latency_ms_p99']}",
            f"{ours['latency_ms_p50']} / {ours['latency_ms_p99']}",
            ratio(ours["latency_ms_p50"], base["latency_ms_p50"]),
            "",
            "",
        ),
    ]
