"""Accuracy under real delivery: both designs on one disordered, duplicated stream,
scored by ``ga4_stitch.score`` against the simulator's truth.

The stream keeps the simulator's defaults: 1% of events up to 2 hours late, 5% up to
3 minutes, 2% delivered twice, 5% shared devices, logins and logouts, cross-domain hops.
Each design runs it sequentially and with 8 workers (ordered by client id, and
unordered); every run starts on an empty database. What reaches GA4 (SENT) is, for the
baseline, every event it resolves; for ga4-stitch every event it resolves except the
redeliveries it recognises (flagged ``duplicate``, which the forwarder's ledger would drop
anyway), so an unrecognised redelivery counts as a duplicate here.

``attribution`` splits each error into what the processing order made unavoidable and
what is the resolver's own. Invalid events are dead-lettered before either design sees
them; ``baseline_would_forward_invalid`` is how many of them the baseline, which does not
validate, resolves when given them anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.attribution import attribute
from benchmarks.baseline import BaselineResolver, run_baseline
from benchmarks.common import CELLS, WORKERS, BenchEnv, Stream, make_stream, run_design
from benchmarks.designs import PROJECT
from benchmarks.report import Row, ratio, verdict
from benchmarks.rpc_counter import RpcCounter, counting_client
from ga4_stitch.score import score

SEED = 23


def run(env: BenchEnv, *, quick: bool, work: Path) -> dict[str, Any]:
    people = 15 if quick else 60
    stream = make_stream(people, seed=SEED)
    payloads: dict[str, dict[str, Any]] = {}
    for payload in stream.deliveries:
        payloads.setdefault(str(payload.get("event_id")), payload)
    cells = {}
    for mode, design in CELLS:
        measured = run_design(env, stream, design, mode, WORKERS)
        result = score(stream.truth, measured.run.sent).to_json()
        cells[f"{design}/{mode}"] = {
            "score": result,
            "attribution": attribute(stream.truth, payloads, measured.run.sent),
            "statuses": dict(measured.run.statuses),
            "redeliveries": measured.run.redeliveries,
            "lost": measured.run.lost,
            "crashes": dict(measured.run.crashes),
        }
    return {
        "stream": {"people": people, "seed": SEED, **stream.stats},
        "workers": WORKERS,
        "cells": cells,
        "baseline_would_forward_invalid": _baseline_on_invalid(env, stream),
    }


def _baseline_on_invalid(env: BenchEnv, stream: Stream) -> dict[str, int]:
    invalid = {event_id for event_id, record in stream.truth.items() if not record["valid"]}
    payloads = [p for p in stream.deliveries if str(p.get("event_id")) in invalid]
    client = counting_client(PROJECT, RpcCounter())
    resolver = BaselineResolver(client, collection_prefix=env.fresh_prefix("invalid"))
    sent, _ = run_baseline(payloads, resolver)
    return {"invalid_deliveries": len(payloads), "forwarded": len(sent)}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def rows(result: dict[str, Any]) -> list[Row]:
    table: list[Row] = []
    cells = result["cells"]
    for mode in ("sequential", "ordered", "unordered"):
        base = cells[f"baseline/{mode}"]
        label = "1 worker" if mode == "sequential" else f"{result['workers']} workers, {mode}"
        designs = ["stitch"] if mode == "sequential" else ["stitch", "stitch-instances"]
        for design in designs:
            table += _cell_rows(base, cells[f"{design}/{mode}"], label, design)
    return table


def _cell_rows(base: dict[str, Any], ours: dict[str, Any], label: str, design: str) -> list[Row]:
    who = label if design == "stitch" else f"{label}, instance per worker"
    b, o = base["score"], ours["score"]
    ba, oa = base["attribution"], ours["attribution"]
    return [
        Row(
            "accuracy",
            f"sessions exactly reproduced ({who})",
            _percent(b["session_accuracy"]),
            _percent(o["session_accuracy"]),
            ratio(o["session_accuracy"], b["session_accuracy"]),
            "100%",
            verdict(o["session_accuracy"] == 1.0),
        ),
        Row(
            "accuracy",
            f"sessions wrong, not explained by processing order ({who})",
            ba["sessions_wrong_resolver"] + ba["sessions_with_lost_events"],
            oa["sessions_wrong_resolver"] + oa["sessions_with_lost_events"],
            None,
            "0",
            verdict(oa["sessions_wrong_resolver"] + oa["sessions_with_lost_events"] == 0),
        ),
        Row(
            "accuracy",
            f"session inflation ({who})",
            round(b["session_inflation"], 4),
            round(o["session_inflation"], 4),
            ratio(o["session_inflation"], b["session_inflation"]),
            "1.0",
            verdict(o["session_inflation"] == 1.0),
        ),
        Row(
            "accuracy",
            f"session_id exact / ceiling ({who})",
            f"{_percent(b['session_id_exact_rate'])} / {_percent(b['session_id_exact_ceiling'])}",
            f"{_percent(o['session_id_exact_rate'])} / {_percent(o['session_id_exact_ceiling'])}",
            None,
            "",
            "",
        ),
        Row(
            "accuracy",
            f"user attribution accuracy ({who})",
            _percent(b["user_accuracy"]),
            _percent(o["user_accuracy"]),
            ratio(o["user_accuracy"], b["user_accuracy"]),
            "",
            "",
        ),
        Row(
            "accuracy",
            f"events leaked after logout, all / not explained by order ({who})",
            f"{b['leaked_after_logout']} / {ba['leaks_resolver']}",
            f"{o['leaked_after_logout']} / {oa['leaks_resolver']}",
            None,
            "0",
            verdict(o["leaked_after_logout"] == 0),
        ),
        Row(
            "accuracy",
            f"duplicates that would reach GA4 ({who})",
            b["duplicates_sent"],
            o["duplicates_sent"],
            None,
            "0",
            verdict(o["duplicates_sent"] == 0),
        ),
        Row(
            "accuracy",
            f"events lost ({who})",
            b["events_lost"],
            o["events_lost"],
            None,
            "0",
            verdict(o["events_lost"] == 0),
        ),
    ]
