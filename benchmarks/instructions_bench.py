"""Instructions per event of each function, counted by callgrind: a figure noise cannot move.

CPU seconds on a shared 2-core machine move by a fifth from one run to the next; the
instructions a process executes for the same requests do not (callgrind counts them on a
simulated CPU, whatever else the machine is doing). So a change to the hot path is judged
here first, and its CPU figure read in the end-to-end benchmark second.

Each function runs as Cloud Run runs it: functions-framework (gunicorn, one worker) in
its own process, here under ``valgrind --tool=callgrind``, on the emulators, with the
local GA4 endpoint in another process. Pushes are sequential, one request at a time, so
no figure depends on how requests happened to overlap (grouped Firestore requests, which
need concurrency, are not exercised: the figure is a lone request's). Per function: a
warm-up (runtime built, connections open) uncounted, then ``measured`` requests counted
(``callgrind_control`` switches counting on and dumps after them). ``resolve`` gets the
simulated stream's raw events; ``forward`` the enriched events ``resolve`` published;
the baseline is ``benchmarks/floor_function.py``, which only reads and decodes the push
body: the framework's own cost, the floor under both.

Writes ``results/instructions.json``; ``python -m benchmarks.run --only instructions``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BenchEnv, make_stream
from benchmarks.cpu import group_processes
from benchmarks.profile_functions import (
    PROJECT,
    SUBSCRIPTION,
    create_topics,
    drain,
    enriched_subscription,
    function_environment,
    local_ga4,
    raw_pulled,
)
from benchmarks.report import Row
from ga4_stitch.delivery import Pulled, push_body
from ga4_stitch.emulators import free_port, spawn, stop_process_group, wait_for_port
from ga4_stitch.pipeline import (
    MAIN,
    client_environment,
    functions_framework_command,
)
from shared.settings import Topics

FLOOR = Path(__file__).resolve().with_name("floor_function.py")
SEED = 41
STARTUP_SECONDS = 600.0
"""Under callgrind the first import of the Google client libraries takes minutes."""


def run(env: BenchEnv, *, quick: bool, work: Path) -> dict[str, Any]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        return {"skipped": "valgrind is not installed"}
    people, warm_up, measured = (4, 10, 30) if quick else (12, 40, 150)
    stream = make_stream(people, seed=SEED, start_micros=time.time_ns() // 1_000)
    raw = raw_pulled(stream.deliveries)
    if len(raw) < 2 * (warm_up + measured):
        raise RuntimeError(f"the stream has {len(raw)} deliveries, too few for {measured}")
    counted = slice(warm_up, warm_up + measured)
    results: dict[str, Any] = {"warm_up": warm_up, "measured": measured}
    pubsub = env.pubsub_host or ""
    with (
        local_ga4(work) as ga4_url,
        client_environment(PROJECT, pubsub, env.firestore_host),
    ):
        base = {
            **os.environ,
            **function_environment(pubsub, env.firestore_host, ga4_url),
            "THREADS": "4",
            "PYTHONPATH": str(MAIN.parent.parent),
        }
        topics = Topics()
        create_topics(topics)
        enriched = enriched_subscription(topics)
        results["floor"] = count(
            work, "floor", ("acknowledge", FLOOR), base, messages=raw, counted=counted
        )
        results["resolve"] = count(
            work, "resolve", ("resolve", MAIN), base, messages=raw, counted=counted
        )
        published = drain(enriched, warm_up + measured)
        if len(published) < warm_up + measured:
            raise RuntimeError(f"resolve published {len(published)} events, too few")
        results["forward"] = count(
            work, "forward", ("forward", MAIN), base, messages=published, counted=counted
        )
    return results


def count(
    work: Path,
    name: str,
    entry: tuple[str, Path],
    env: dict[str, str],
    *,
    messages: list[Pulled],
    counted: slice,
) -> dict[str, Any]:
    """Instructions per request of one function over ``messages[counted]``; the messages
    before are its warm-up, those after are pushed uncounted (``resolve`` publishes the
    events ``forward`` is then given)."""
    target, source = entry
    port = free_port()
    out = work / f"callgrind.{name}"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--trace-children=yes",
        f"--callgrind-out-file={out}.%p",
        sys.executable,
        functions_framework_command(),
        *("--target", target, "--source", str(source), "--signature-type", "http"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    process = spawn(command, work / f"{name}.log", env=env, cwd=MAIN.parent.parent)
    measured = messages[counted]
    try:
        wait_for_port("127.0.0.1", port, STARTUP_SECONDS, process)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=STARTUP_SECONDS)
        for message in messages[: counted.start]:
            _push(connection, message)
        pids = list(group_processes(process.pid))
        _control(pids, "--instr=on")
        _control(pids, "--zero")
        for message in measured:
            _push(connection, message)
        _control(pids, "--dump=measured")
        for message in messages[counted.stop :]:
            _push(connection, message)
        connection.close()
    finally:
        stop_process_group(process)
    instructions = max(dumped_instructions(out.parent, out.name), default=0)
    if instructions <= 0:
        raise RuntimeError(f"callgrind dumped no count for {name} (see {work / name}.log)")
    per_event = instructions / len(measured)
    return {
        "events": len(measured),
        "instructions": instructions,
        "instructions_per_event": round(per_event),
        "millions_per_event": round(per_event / 1e6, 3),
    }


def dumped_instructions(folder: Path, prefix: str) -> list[int]:
    """The totals of the dumps ``callgrind_control --dump`` wrote (``<prefix>.<pid>.<n>``),
    one per process of the function's group; the worker's is the largest."""
    totals = []
    for path in sorted(folder.glob(f"{prefix}.*.*")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                totals.append(int(line.split()[1]))
                break
    return totals


def _control(pids: list[int], option: str) -> None:
    subprocess.run(
        ["callgrind_control", option, *map(str, pids)], check=True, capture_output=True, timeout=120
    )


def _push(connection: http.client.HTTPConnection, message: Pulled) -> None:
    body = json.dumps(push_body(message, SUBSCRIPTION, 1)).encode()
    connection.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        raise RuntimeError(f"the function answered HTTP {answer.status} to a push")


def rows(result: dict[str, Any]) -> list[Row]:
    if "skipped" in result:
        return [Row("instructions", result["skipped"], "", "", None, "", "")]
    floor = result["floor"]["millions_per_event"]
    table = []
    for name in ("resolve", "forward"):
        ours = result[name]["millions_per_event"]
        table.append(
            Row(
                "instructions",
                f"{name} function, M instructions per event (callgrind, one at a time; "
                "baseline: the framework floor)",
                floor,
                ours,
                round(ours / floor, 2) if floor else None,
                "",
                "",
            )
        )
    return table
