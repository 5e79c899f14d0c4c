"""Where each function's CPU goes, per event: both Cloud Functions profiled in-process.

    .venv/bin/python -m benchmarks.profile_functions [--people N] [--seed S]

Starts its own Pub/Sub and Firestore emulators and a local GA4 endpoint (subprocesses,
so their CPU is not this process's), then builds each function's WSGI app with
``functions_framework.create_app`` (what Cloud Run serves; the HTTP server's own request
parsing is the one layer left out) and calls it with production push requests: the
simulated stream's raw events for ``resolve``, then the enriched events ``resolve``
actually published (pulled back from the emulator) for ``forward``. Deliveries are
sequential, one request at a time.

Each function's deliveries are split in three: a warm-up (runtime built, connections
opened), an unprofiled half, whose process CPU per event (``time.process_time``: every
thread, gRPC's native threads included) is the figure, and a profiled half. The profile
runs ``cProfile`` with a per-thread CPU clock (``time.thread_time``) in every Python
thread (the request thread, the Pub/Sub publisher's commit threads), so waiting costs
nothing; CPU no Python frame accounts for (gRPC's C-core threads) is reported as
``native threads``. Self time is grouped by the package of the function that spent it;
a builtin's self time goes to the package of its callers, except for the builtins that
are a component of their own (zlib, json's C scanner, sockets). The profiled pass costs
more CPU than the unprofiled one (cProfile's own overhead); ``scaled_ms_per_event``
spreads the unprofiled figure over the components in the profile's proportions.

Writes ``benchmarks/results/profile.json`` and prints the breakdown.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ga4_stitch.delivery import EmulatorSource, Pulled, push_body
from ga4_stitch.emulators import (
    emulator_env,
    free_port,
    running_emulators,
    spawn,
    stop_process_group,
    wait_for_port,
)
from ga4_stitch.pipeline import LOCAL_SECRETS, MAIN
from ga4_stitch.replay import CanonicalKeys, input_event
from shared.settings import Topics

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = "ga4-stitch-profile"
MEASUREMENT_ID = "G-PROFILE001"
SUBSCRIPTION = "projects/ga4-stitch-profile/subscriptions/push"
WARM_UP = 40

_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("functions_framework/", "framework (functions_framework, flask, werkzeug)"),
    ("/flask/", "framework (functions_framework, flask, werkzeug)"),
    ("/werkzeug/", "framework (functions_framework, flask, werkzeug)"),
    ("/cloudevents/", "cloudevents"),
    ("google/cloud/pubsub_v1/", "pubsub publisher"),
    ("google/cloud/firestore", "firestore client"),
    ("google/api_core/", "api_core"),
    ("google/auth/", "api_core"),
    ("/grpc/", "grpc (python)"),
    ("google/protobuf/", "protobuf / proto-plus"),
    ("/proto/", "protobuf / proto-plus"),
    ("/requests/", "requests / urllib3 / http.client"),
    ("/urllib3/", "requests / urllib3 / http.client"),
    ("/http/client.py", "requests / urllib3 / http.client"),
    ("/tenacity/", "tenacity"),
    ("/logging/", "logging"),
    ("/json/", "json"),
    ("shared/logs.py", "shared.logs"),
    ("shared/domain/", "shared.domain"),
    ("shared/services/", "shared.services"),
    ("shared/adapters/", "shared.adapters"),
    ("shared/", "shared (other)"),
    ("functions/main.py", "functions/main.py"),
    ("/ua_parser", "ua-parser"),
    ("threading.py", "threading / queue"),
    ("/queue.py", "threading / queue"),
    ("/concurrent/", "threading / queue"),
)
_BUILTIN_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("zlib", "zlib"),
    ("_json", "json"),
    ("socket", "sockets / ssl / select"),
    ("_ssl", "sockets / ssl / select"),
    ("select", "sockets / ssl / select"),
    ("cygrpc", "grpc (python)"),
    ("_upb", "protobuf / proto-plus"),
    ("google._upb", "protobuf / proto-plus"),
)
ENTRY_POINTS: tuple[tuple[str, str, str], ...] = (
    ("functions_framework/__init__.py", "view_func", "the request inside functions_framework"),
    ("adapters/push.py", "delivery", "push request read"),
    ("services/resolve.py", "handle", "ResolveRuntime.handle"),
    ("services/forward.py", "handle", "ForwardRuntime.handle"),
    ("adapters/pubsub.py", "publish_all", "PubSubPublisher.publish_all"),
    ("adapters/ga4_http.py", "send", "Ga4Client.send"),
    ("adapters/firestore/state_store.py", "save", "FirestoreStateStore.save"),
    ("adapters/firestore/state_store.py", "load", "FirestoreStateStore.load"),
    ("adapters/firestore/ledger.py", "delivered", "FirestoreForwardLedger.delivered"),
    ("adapters/firestore/ledger.py", "record", "FirestoreForwardLedger.record"),
    ("logging/__init__.py", "_log", "logging (Logger._log)"),
)


def category(filename: str, name: str) -> str | None:
    """The component a profiled function belongs to; None for a builtin that takes its
    callers' component."""
    if filename == "~":
        for marker, label in _BUILTIN_CATEGORIES:
            if marker in name:
                return label
        return None
    path = filename.replace(os.sep, "/")
    for marker, label in _CATEGORIES:
        if marker in path:
            return label
    return "other (stdlib, harness)"


Key = tuple[str, int, str]


def breakdown(stats: dict[Key, Any]) -> dict[str, float]:
    """CPU seconds of self time by component (a builtin's split among its callers)."""
    totals: dict[str, float] = defaultdict(float)
    for (filename, _, name), (_, _, tottime, _, callers) in stats.items():
        label = category(filename, name)
        if label is not None:
            totals[label] += tottime
            continue
        weights = {
            caller: entry[2] for caller, entry in callers.items() if isinstance(entry, tuple)
        }
        total = sum(weights.values())
        if not weights or total <= 0:
            totals["builtins (no caller)"] += tottime
            continue
        for caller, share in weights.items():
            label = category(caller[0], caller[2]) or "builtins (no caller)"
            totals[label] += tottime * share / total
    return dict(totals)


def entry_points(stats: dict[Key, Any]) -> dict[str, float]:
    """Inclusive CPU seconds of the functions named in ``ENTRY_POINTS``."""
    found: dict[str, float] = defaultdict(float)
    for (filename, _, name), (_, _, _, cumtime, _) in stats.items():
        path = filename.replace(os.sep, "/")
        for marker, function, label in ENTRY_POINTS:
            if marker in path and name == function:
                found[label] += cumtime
    return dict(found)


class ThreadProfiles:
    """A CPU-clock ``cProfile`` in the calling thread and in every thread started while
    the block runs (``threading.setprofile``: the hook's first call swaps itself for a
    profiler of that thread)."""

    def __init__(self) -> None:
        self._profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_in_thread(self, *_: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self._profiles.append(profile)
        profile.enable()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        threading.setprofile(self._start_in_thread)
        main = cProfile.Profile(time.thread_time)
        self._profiles.append(main)
        main.enable()
        try:
            yield
        finally:
            main.disable()
            threading.setprofile(None)

    def stats(self, dump: Path | None = None) -> dict[Key, Any]:
        """The threads' profiles merged (and written to ``dump`` for ``pstats``, if given)."""
        merged: pstats.Stats | None = None
        with self._lock:
            profiles = list(self._profiles)
        for profile in profiles:
            profile.create_stats()
            if merged is None:
                merged = pstats.Stats(profile)
            else:
                merged.add(profile)
        if merged is not None and dump is not None:
            merged.dump_stats(dump)
        return dict(vars(merged)["stats"]) if merged is not None else {}


# --------------------------------------------------------------------------- requests


def rfc3339_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def raw_pulled(deliveries: Sequence[dict[str, Any]]) -> list[Pulled]:
    """The stream's deliveries as the raw-events push subscription hands them out: the
    GTM tag's bytes, ordering key and attributes (``ga4_stitch.replay.input_event``)."""
    canonical = CanonicalKeys()
    pulled = []
    for line, payload in enumerate(deliveries, start=1):
        data = json.dumps(payload, separators=(",", ":")).encode()
        event = input_event(line, data, payload, canonical)
        pulled.append(
            Pulled(
                ack_id=str(line),
                message_id=str(10_000_000 + line),
                data=data,
                attributes=dict(event.attributes),
                ordering_key=event.ordering_key,
                publish_time=rfc3339_now(),
            )
        )
    return pulled


def environs(messages: Iterable[Pulled]) -> list[dict[str, Any]]:
    """WSGI environs of push requests, built before the clock starts."""
    from werkzeug.test import EnvironBuilder

    built = []
    for message in messages:
        body = json.dumps(push_body(message, SUBSCRIPTION, 1)).encode()
        builder = EnvironBuilder(
            path="/", method="POST", data=body, content_type="application/json"
        )
        built.append(builder.get_environ())
        builder.close()
    return built


def call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> int:
    status: list[str] = []

    def start_response(code: str, headers: Any, exc_info: Any = None) -> None:
        status.append(code)

    body = app(environ, start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return int(status[0].split()[0])


def measure(
    app: Callable[..., Iterable[bytes]], requests: list[dict[str, Any]], dump: Path | None = None
) -> dict[str, Any]:
    """Unprofiled process CPU per event after the warm-up, then the profiled half."""
    warm, rest = requests[:WARM_UP], requests[WARM_UP:]
    plain, profiled = rest[: len(rest) // 2], rest[len(rest) // 2 :]
    statuses: dict[int, int] = defaultdict(int)
    for environ in warm:
        statuses[call(app, environ)] += 1
    began = time.process_time()
    for environ in plain:
        statuses[call(app, environ)] += 1
    plain_ms = 1000 * (time.process_time() - began) / max(1, len(plain))
    profiles = ThreadProfiles()
    began = time.process_time()
    with profiles.running():
        for environ in profiled:
            statuses[call(app, environ)] += 1
    time.sleep(0.2)
    profiled_ms = 1000 * (time.process_time() - began) / max(1, len(profiled))
    stats = profiles.stats(dump)
    per = 1000 / max(1, len(profiled))
    components = {k: v * per for k, v in breakdown(stats).items()}
    python_ms = sum(components.values())
    components["native threads (gRPC core), by difference"] = max(0.0, profiled_ms - python_ms)
    scale = plain_ms / profiled_ms if profiled_ms else 0.0
    ordered = sorted(components.items(), key=lambda item: -item[1])
    return {
        "deliveries": {"warm_up": len(warm), "unprofiled": len(plain), "profiled": len(profiled)},
        "statuses": dict(statuses),
        "process_cpu_ms_per_event": round(plain_ms, 3),
        "profiled_process_cpu_ms_per_event": round(profiled_ms, 3),
        "profiled_ms_per_event": {k: round(v, 3) for k, v in ordered},
        "scaled_ms_per_event": {k: round(v * scale, 3) for k, v in ordered},
        "inclusive_ms_per_event": {
            k: round(v * per, 3) for k, v in sorted(entry_points(stats).items())
        },
        "top_self_ms_per_event": top(stats, per),
    }


def top(stats: dict[Key, Any], per: float, count: int = 25) -> list[dict[str, Any]]:
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:count]
    return [
        {
            "function": f"{Path(filename).name}:{line}({name})",
            "self_ms": round(entry[2] * per, 4),
            "calls_per_event": round(entry[1] * per / 1000, 2),
        }
        for (filename, line, name), entry in rows
    ]


# --------------------------------------------------------------------------- setup


def function_environment(pubsub: str, firestore: str, ga4_url: str) -> dict[str, str]:
    return {
        "PUBSUB_EMULATOR_HOST": pubsub,
        "FIRESTORE_EMULATOR_HOST": firestore,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GA4_ENDPOINT": ga4_url,
        "GA4_MEASUREMENT_ID": MEASUREMENT_ID,
        **LOCAL_SECRETS,
    }


def create_topics(topics: Topics) -> None:
    """The pipeline's topics in ``PROJECT``; those the emulator already has are kept."""
    from google.api_core.exceptions import AlreadyExists
    from google.cloud.pubsub_v1 import PublisherClient

    publisher = PublisherClient()
    for topic in vars(topics).values():
        with contextlib.suppress(AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(PROJECT, topic))


def enriched_subscription(topics: Topics) -> EmulatorSource:
    from google.cloud.pubsub_v1 import SubscriberClient

    subscriber = SubscriberClient()
    path = subscriber.subscription_path(PROJECT, "profile-enriched")
    subscriber.create_subscription(
        request={
            "name": path,
            "topic": f"projects/{PROJECT}/topics/{topics.enriched}",
            "ack_deadline_seconds": 600,
        }
    )
    return EmulatorSource(subscriber, path, wait_seconds=5.0)


def drain(source: EmulatorSource, expected: int) -> list[Pulled]:
    pulled: list[Pulled] = []
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while len(seen) < expected and time.monotonic() < deadline:
        batch = source.pull(500)
        source.acknowledge([message.ack_id for message in batch])
        for message in batch:
            if message.message_id not in seen:
                seen.add(message.message_id)
                pulled.append(message)
    return pulled


@contextlib.contextmanager
def local_ga4(work: Path) -> Iterator[str]:
    port = free_port()
    process = spawn(
        [sys.executable, "-m", "ga4_stitch.ga4_endpoint", "--port", str(port)],
        work / "ga4.log",
        cwd=MAIN.parent.parent,
    )
    try:
        wait_for_port("127.0.0.1", port, 30, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process)


def profile(people: int, seed: int, dump: Path | None = None) -> dict[str, Any]:
    import functions_framework

    from benchmarks.common import make_stream
    from shared.logs import configure

    stream = make_stream(people, seed=seed, start_micros=time.time_ns() // 1_000)
    topics = Topics()
    results: dict[str, Any] = {"stream": {"people": people, "seed": seed, **stream.stats}}
    with (
        tempfile.TemporaryDirectory(prefix="ga4-stitch-profile-") as work,
        running_emulators(Path(work) / "emulators") as emulators,
        local_ga4(Path(work)) as ga4_url,
        open(os.devnull, "w") as devnull,
    ):
        hosts = emulator_env(emulators)
        os.environ.update(
            function_environment(
                hosts["PUBSUB_EMULATOR_HOST"], hosts["FIRESTORE_EMULATOR_HOST"], ga4_url
            )
        )
        create_topics(topics)
        enriched = enriched_subscription(topics)
        raw = raw_pulled(stream.deliveries)
        with contextlib.redirect_stdout(devnull):
            configure("INFO")
            resolve = functions_framework.create_app(  # type: ignore[no-untyped-call]
                "resolve", str(MAIN), "http"
            )
            results["resolve"] = measure(resolve, environs(raw), dump and dump / "resolve.pstats")
        forwarded = drain(enriched, results["resolve"]["statuses"].get(200, 0))
        with contextlib.redirect_stdout(devnull):
            forward = functions_framework.create_app(  # type: ignore[no-untyped-call]
                "forward", str(MAIN), "http"
            )
            results["forward"] = measure(
                forward, environs(forwarded), dump and dump / "forward.pstats"
            )
    return results


def render(results: dict[str, Any]) -> str:
    lines = []
    for name in ("resolve", "forward"):
        figures = results[name]
        lines.append(
            f"{name}: {figures['process_cpu_ms_per_event']:.3f} ms/event process CPU "
            f"(profiled {figures['profiled_process_cpu_ms_per_event']:.3f}; "
            f"deliveries {figures['deliveries']}, statuses {figures['statuses']})"
        )
        lines.append("  by component, ms/event (scaled to the unprofiled figure):")
        for label, value in figures["scaled_ms_per_event"].items():
            lines.append(f"    {value:7.3f}  {label}")
        lines.append("  inclusive, ms/event under the profiler:")
        for label, value in figures["inclusive_ms_per_event"].items():
            lines.append(f"    {value:7.3f}  {label}")
        lines.append("  top self time, ms/event under the profiler:")
        lines.extend(
            f"    {row['self_ms']:7.4f}  {row['function']}  ({row['calls_per_event']}/event)"
            for row in figures["top_self_ms_per_event"][:15]
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_functions", description=__doc__
    )
    parser.add_argument("--people", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "profile.json")
    parser.add_argument(
        "--dump", type=Path, default=None, help="directory for the raw pstats of each function"
    )
    args = parser.parse_args(argv)
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
    results = profile(args.people, args.seed, args.dump)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
