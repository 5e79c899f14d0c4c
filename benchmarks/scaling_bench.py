"""How ga4-stitch's cost per event and memory grow with clients and with history.

Three measurements, each stated as what it is:

- ``clients`` (Firestore emulator, RPCs counted at the gRPC layer): one instance whose
  cache is scaled down to ``SCALED_CACHE`` entries meets N clients round-robin: a first
  event each (creates the state), then the next event of the first ``min(N, cache)``
  clients in the same order (steady state). An LRU cache's hit rate depends only on the
  ratio of clients to entries, so N = 100, 1,000, 10,000 against 1,000 entries stands
  for 1k, 10k, 100k clients against the default 10,000 entries, at a tenth of the
  emulator time. The baseline keeps nothing in the instance: its cost does not depend
  on N and is measured in the resolver benchmark.
- ``memory`` (pure core, ``tracemalloc``): bytes one cached client holds after histories
  of several lengths (the cache keeps the stored, compressed document), and the cache's size
  for 1k, 10k and 100k clients, which the LRU bounds at ``min(N, cache size)`` entries.
- ``history`` (pure core, then the emulator for two points): one client's state document
  after 10 ... 10,000 events, in bytes as Firestore counts storage; on the
  emulator, the document written at two points, its ``Commit`` request bytes and the
  size of what reads back. Bounded means: constant once the history exceeds the windows.
- ``instance`` (from the end-to-end benchmark's ``results/e2e.json`` of the same run, when
  present): events per second one Cloud Run instance of the Terraform sizing
  (``terraform/variables.tf``: ``cpu``, ``concurrency``) sustains, from each function's
  measured process CPU per delivery: ``1000 x cpu / ms`` with its CPU saturated, and 60%
  of that, where Cloud Run's autoscaler adds instances. Concurrency bounds the rate only
  if ``concurrency / request latency`` is lower; at 80 concurrent requests that needs
  requests slower than 80 / (CPU-bound rate) seconds, far above the functions' own
  latency (the paced pass's publish-to-GA4 p50, both hops, stands as an upper bound).
"""

from __future__ import annotations

import json
import time
import tracemalloc
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks import cost
from benchmarks.common import START_MICROS, BenchEnv
from benchmarks.delivery import deliver
from benchmarks.designs import PROJECT, RecordingPublisher, StitchDesign
from benchmarks.firestore_size import document_size
from benchmarks.report import Row, verdict
from benchmarks.rpc_counter import RpcCounter, counting_client, per_event
from shared.adapters.firestore.codec import encode
from shared.adapters.firestore.state_store import FirestoreStateStore, client_document_id
from shared.bootstrap import resolve_config
from shared.domain.events import decode_raw_event
from shared.domain.resolution import Rules, resolve_event
from shared.domain.state import ClientState
from shared.services.resolve import ResolveRuntime
from shared.settings import Settings

SCALED_CACHE = 1_000
DEFAULT_CACHE = 10_000
MINUTE = 60_000_000
HISTORY_POINTS = (10, 100, 1_000, 10_000)


def run(env: BenchEnv, *, quick: bool, work: Path, results: Path | None = None) -> dict[str, Any]:
    clients = (100, 1_000) if quick else (100, 1_000, 10_000)
    return {
        "clients": [_clients(env, n) for n in clients],
        "scaled_cache_entries": SCALED_CACHE,
        "default_cache_entries": DEFAULT_CACHE,
        "memory": _memory(sample=50 if quick else 200),
        "history": _history(env, HISTORY_POINTS),
        "instance": instance_rate(results),
    }


# --------------------------------------------------------------------------- instance

CPU_TARGET = 0.6
"""Cloud Run's autoscaling CPU target (docs/cost.md, sources)."""


def instance_rate(results: Path | None) -> dict[str, Any] | None:
    """Events per second one instance of each function sustains (module docstring), from
    the burst of ``results/e2e.json``; None when no end-to-end run measured process CPU."""
    path = (results or Path(__file__).resolve().parent / "results") / "e2e.json"
    try:
        burst = json.loads(path.read_text())["result"]["passes"]["burst"]
        cpu = burst["process_cpu_ms_per_event"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    figures: dict[str, Any] = {"source": str(path.name), "deliveries": burst.get("events_in")}
    for function in ("resolve", "forward"):
        ms = cpu.get(f"{function} function")
        if not ms:
            continue
        sizing = cost.terraform_sizing(f"{function}_function")
        saturated = cost.events_per_second_per_instance(ms, sizing.vcpu)
        figures[function] = {
            "cpu_ms_per_event": ms,
            "vcpu": sizing.vcpu,
            "concurrency": sizing.concurrency,
            "saturated_events_per_second": round(saturated, 1),
            "at_cpu_target_events_per_second": round(CPU_TARGET * saturated, 1),
            "latency_that_would_bind_concurrency_ms": round(
                1000 * sizing.concurrency / saturated, 1
            ),
        }
    return figures


# --------------------------------------------------------------------------- clients


def _event(client: int, number: int) -> dict[str, Any]:
    time_micros = START_MICROS - 3 * 60 * MINUTE + client * 1_000 + number * 10 * MINUTE
    return {
        "client_id": f"{1_000_000_000 + client}.1700000000",
        "event_name": "page_view",
        "event_id": f"c{client:06d}-{number}",
        "timestamp_micros": time_micros,
        "x-ga-measurement_id": "G-SCALE00001",
        "x-ga-gcs": "G111",
        "page_location": "https://shop.example.com/",
    }


def _clients(env: BenchEnv, count: int) -> dict[str, Any]:
    counter = RpcCounter()
    settings = Settings(project=PROJECT, collection_prefix=env.fresh_prefix("scaling"))
    store = FirestoreStateStore(
        counting_client(PROJECT, counter),
        clients_collection=settings.collection("clients"),
        users_collection=settings.collection("users"),
        cache_size=SCALED_CACHE,
    )
    runtime = ResolveRuntime(
        resolve_config(settings),
        store,
        RecordingPublisher(),
        clock=lambda: START_MICROS,
        sleep=time.sleep,
    )
    design = StitchDesign(runtime)
    first = deliver([_event(c, 0) for c in range(count)], lambda _: design, "ordered")
    first_rpcs = counter.calls()
    counter.reset()
    steady = min(count, SCALED_CACHE)
    second = deliver([_event(c, 1) for c in range(steady)], lambda _: design, "ordered")
    return {
        "clients": count,
        "stands_for_clients": count * DEFAULT_CACHE // SCALED_CACHE,
        "first_event_rpcs_per_event": per_event(first_rpcs, first.deliveries),
        "steady_rpcs_per_event": per_event(counter.calls(), second.deliveries),
        "steady_events": second.deliveries,
        "cached_clients": store.cached_clients,
        "statuses": dict(first.statuses + second.statuses),
    }


# --------------------------------------------------------------------------- memory


def _history_state(events: int, client: str, rules: Rules) -> ClientState:
    """One client's state after ``events`` events: sessions of 10 events a minute apart,
    40 minutes between sessions, a login in each (users rotating, as on shared devices)."""
    state: ClientState | None = None
    time_micros = START_MICROS - 48 * 60 * MINUTE
    for index in range(events):
        time_micros += 40 * MINUTE if index % 10 == 0 else MINUTE
        payload: dict[str, Any] = {
            "client_id": client,
            "event_name": "login" if index % 10 == 1 else "page_view",
            "event_id": f"e{index:07d}.{zlib.crc32(f'{client}/{index}'.encode()):08x}",
            "timestamp_micros": time_micros,
            "x-ga-measurement_id": "G-SCALE00001",
            "page_location": "https://shop.example.com/",
        }
        if index % 10 == 1:
            payload["user_id"] = f"cust-{index % 30:06d}"
        event = decode_raw_event(payload, "m", None)
        state = resolve_event(state, event, rules, max(time_micros, START_MICROS)).state
    if state is None:
        raise ValueError("a history needs at least one event")
    return state


def _memory(sample: int) -> dict[str, Any]:
    rules = Rules()
    per_entry = {}
    for events in (5, 20, 120):
        states = [
            _history_state(events, f"{2_000_000_000 + n}.1700000000", rules) for n in range(sample)
        ]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        held = [encode(state) for state in states]
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        per_entry[events] = round((after - before) / len(held))
    return {
        "sample_clients": sample,
        "bytes_per_cached_client_by_history": per_entry,
        "cache_mib_by_clients": {
            clients: {
                events: round(min(clients, DEFAULT_CACHE) * size / 2**20, 1)
                for events, size in per_entry.items()
            }
            for clients in (1_000, 10_000, 100_000)
        },
    }


# --------------------------------------------------------------------------- history


def _history(env: BenchEnv, points: tuple[int, ...]) -> dict[str, Any]:
    rules = Rules()
    client = "1234567890.1700000000"
    sizes = {}
    for events in points:
        started = time.perf_counter()
        state = _history_state(events, client, rules)
        seconds = time.perf_counter() - started
        document = encode(state)
        sizes[events] = {
            "firestore_bytes": document_size(["clients", client_document_id(client)], document),
            "core_us_per_event": round(1e6 * seconds / events, 1),
            "processed_kept": len(state.processed),
            "windows_kept": sum(len(stream.windows) for stream in state.streams),
        }
    emulator = {
        events: _written(env, client, _history_state(events, client, rules))
        for events in (points[1], points[-1])
    }
    return {"points": sizes, "emulator": emulator}


def _written(env: BenchEnv, client: str, state: ClientState) -> dict[str, Any]:
    counter = RpcCounter()
    firestore = counting_client(PROJECT, counter)
    collection = f"{env.fresh_prefix('history')}clients"
    reference = firestore.collection(collection).document(client_document_id(client))
    reference.set(encode(state))
    stored: Mapping[str, Any] = reference.get().to_dict()
    return {
        "commit_request_bytes": round(counter.mean_request_bytes("Commit")),
        "firestore_bytes_read_back": document_size(
            [collection, client_document_id(client)], stored
        ),
    }


# --------------------------------------------------------------------------- table


def rows(result: dict[str, Any]) -> list[Row]:
    table = [
        Row(
            "scaling",
            f"RPCs/event, steady state, {c['stands_for_clients']:,} clients per instance "
            f"(measured: {c['clients']:,} clients, {result['scaled_cache_entries']:,}-entry cache)",
            "",
            c["steady_rpcs_per_event"]["total"],
            None,
            "<= 2.0",
            verdict(c["steady_rpcs_per_event"]["total"] <= 2.0),
        )
        for c in result["clients"]
    ]
    memory = result["memory"]
    longest = max(memory["bytes_per_cached_client_by_history"], key=int)
    for clients, by_history in memory["cache_mib_by_clients"].items():
        table.append(
            Row(
                "scaling",
                f"instance cache MiB, {int(clients):,} clients ({longest}-event histories)",
                "",
                by_history[longest],
                None,
                "bounded",
                "",
            )
        )
    instance = result.get("instance") or {}
    for function in ("resolve", "forward"):
        figures = instance.get(function)
        if not figures:
            continue
        table.append(
            Row(
                "scaling",
                f"events/s one {function} instance sustains ({figures['vcpu']:g} vCPU, "
                f"concurrency {figures['concurrency']}; {figures['cpu_ms_per_event']:.2f} "
                "process CPU ms/delivery end to end): saturated / at 60% CPU",
                "",
                f"{figures['saturated_events_per_second']:.0f} / "
                f"{figures['at_cpu_target_events_per_second']:.0f}",
                None,
                "",
                "",
            )
        )
    points = result["history"]["points"]
    keys = sorted(points, key=int)
    last, before = points[keys[-1]], points[keys[-2]]
    table.extend(
        Row(
            "scaling",
            f"state document bytes after {int(key):,} events of one client",
            "",
            points[key]["firestore_bytes"],
            None,
            "bounded",
            "",
        )
        for key in keys
    )
    growth = last["firestore_bytes"] / before["firestore_bytes"]
    table.append(
        Row(
            "scaling",
            f"document growth from {int(keys[-2]):,} to {int(keys[-1]):,} events",
            "",
            f"{growth:.4f}x",
            None,
            "constant",
            verdict(growth <= 1.01),
        )
    )
    return table
