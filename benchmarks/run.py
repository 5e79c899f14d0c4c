"""Run the benchmarks, print the table, write ``benchmarks/results``.

    .venv/bin/python -m benchmarks.run [--quick] [--only NAME ...]

Starts its own Firestore and Pub/Sub emulators (stopped at the end whatever happens),
runs each benchmark, and writes ``results/<name>.json`` per benchmark plus
``results/summary.json`` and ``results/TABLE.md`` (the table the README includes) built
from every benchmark file present, with the cost per month as a section of its own
(``--only cost`` runs just that, reading the end-to-end CPU from ``results/e2e.json``, as
the scaling benchmark's instance rows do: ``e2e`` runs before both).
``--quick`` is a smoke run of a minute or two on small streams; it writes to
``results/quick/`` so the committed figures stay those of a full run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import (
    accuracy_bench,
    cost_bench,
    e2e_bench,
    instructions_bench,
    resolver_bench,
    scaling_bench,
)
from benchmarks.common import BenchEnv, quiet_logs
from benchmarks.designs import PROJECT
from benchmarks.report import Row, console, markdown
from ga4_stitch.emulators import emulator_env, running_emulators

RESULTS = Path(__file__).resolve().parent / "results"
Runner = Callable[..., dict[str, Any]]
Tabulator = Callable[[dict[str, Any]], list[Row]]
BENCHMARKS: dict[str, tuple[Runner, Tabulator]] = {
    "resolver": (resolver_bench.run, resolver_bench.rows),
    "accuracy": (accuracy_bench.run, accuracy_bench.rows),
    "e2e": (e2e_bench.run, e2e_bench.rows),
    "scaling": (scaling_bench.run, scaling_bench.rows),
    "cost": (cost_bench.run, cost_bench.rows),
    "instructions": (instructions_bench.run, instructions_bench.rows),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small streams, a smoke run")
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark"
    )
    parser.add_argument("--results", type=Path, default=None, help="where to write results")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    out = args.results or (RESULTS / "quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    quiet_logs()
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="ga4-stitch-bench-") as work,
        running_emulators(Path(work) / "emulators") as emulators,
    ):
        os.environ.update(emulator_env(emulators))
        os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
        env = BenchEnv(
            emulators["firestore"].host,
            emulators["pubsub"].host,
            firestore_pgid=emulators["firestore"].process.pid,
        )
        for name in names:
            _run_one(name, env, out, quick=args.quick, work=Path(work))
    rows = _write_summary(out, time.monotonic() - started)
    print()
    print(console(rows))
    print(f"\nall benchmarks: {time.monotonic() - started:.0f} s; results in {out}")
    return 0


def _run_one(name: str, env: BenchEnv, out: Path, *, quick: bool, work: Path) -> None:
    run, rows = BENCHMARKS[name]
    print(f"[{name}] running{' (quick)' if quick else ''}...", flush=True)
    began = time.monotonic()
    options: dict[str, Any] = {"results": out} if name in ("cost", "scaling") else {}
    result = run(env, quick=quick, work=work, **options)
    seconds = time.monotonic() - began
    table = rows(result)
    document = {
        "benchmark": name,
        "quick": quick,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "machine": _machine(),
        "rows": [row.to_json() for row in table],
        "result": result,
    }
    (out / f"{name}.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(console(table), flush=True)
    print(f"[{name}] {seconds:.0f} s", flush=True)


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def _write_summary(out: Path, seconds: float) -> list[Row]:
    rows: list[Row] = []
    benchmarks = {}
    for name in BENCHMARKS:
        path = out / f"{name}.json"
        if not path.exists():
            continue
        document = json.loads(path.read_text())
        benchmarks[name] = {k: document[k] for k in ("finished_at", "seconds", "quick")}
        rows += [Row(**row) for row in document["rows"]]
    summary = {
        "last_run_seconds": round(seconds, 1),
        "machine": _machine(),
        "benchmarks": benchmarks,
        "rows": [row.to_json() for row in rows],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = markdown(rows)
    if "cost" in benchmarks:
        cost = json.loads((out / "cost.json").read_text())["result"]
        table += cost_bench.markdown_section(cost)
    (out / "TABLE.md").write_text(table)
    return rows


if __name__ == "__main__":
    sys.exit(main())
