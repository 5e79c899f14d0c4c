"""Cost per month, measured: ga4-stitch's whole pipeline against the baseline's.

One simulated stream (100 people, seed 1, as ``ga4-stitch simulate --people 100 --seed 1``;
15 people with ``--quick``), delivered sequentially, once through each pipeline on the
Firestore emulator, every Firestore client behind its own ``RpcCounter``:

- ga4-stitch: each delivery as the GTM SC tag publishes it (``ga4_stitch.replay.input_event``:
  data, attributes, ordering key) goes to ``ResolveRuntime.handle`` as a push envelope
  (the function's own entry point, wired as ``benchmarks.designs.stitch_runtime``); every
  message it publishes is captured; every enriched event then goes, in order, to
  ``ForwardRuntime.handle`` with the real ``FirestoreForwardLedger`` on a second counted
  client and a GA4 sender that sends nothing;
- baseline: the same deliveries to a function that decodes the push envelope, resolves with
  ``BaselineResolver`` (read then write, no transaction) and builds its GA4 request; no
  enriched topic, no forwarder, no ledger (the guides send from the resolver).

Measured: Firestore documents read / written / deleted (``RpcCounter.documents``), the
bytes of every Pub/Sub message, CPU time of each function's work in this process
(``time.process_time``), the CPU functions-framework spends on one push request (a no-op
function behind ``functions_framework.create_app``, through Flask's test client), the
document bytes left in the database, and the log lines each function writes at the
deployed LOG_LEVEL (``LogCounter``: formatted by the functions' own
``CloudLoggingFormatter``, counted by severity; the CPU the formatting takes is left out of
the function's, which has never included its log output), and the HTTP requests each
function answered, acknowledged or not (Cloud Run writes a request log entry for each).
``benchmarks/cost.py`` turns them into a monthly bill with ``benchmarks/prices.json``.
When ``results/e2e.json`` holds per-process CPU, it is reported beside the in-process
figure as a cross-check.
"""

from __future__ import annotations

import base64
import json
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import cost
from benchmarks.baseline import BaselineResolver, sent_line
from benchmarks.common import BenchEnv, Stream, make_stream
from benchmarks.designs import PROJECT, RecordingPublisher, stitch_runtime
from benchmarks.firestore_size import document_size
from benchmarks.report import Row, ratio
from benchmarks.rpc_counter import RpcCounter, counting_client
from ga4_stitch.replay import CanonicalKeys, input_event
from shared.adapters.firestore.ledger import LEDGER_TTL_MICROS, FirestoreForwardLedger
from shared.domain.measurement import PayloadRules
from shared.domain.messages import OutgoingMessage, message_from_cloud_event
from shared.errors import InvalidEvent, TransientError
from shared.logs import CloudLoggingFormatter
from shared.services.forward import ForwardRuntime
from shared.settings import Settings

PEOPLE, QUICK_PEOPLE, SEED = 100, 15, 1
PUBLISH_TIME = "2025-11-22T08:26:40.000Z"
MEASUREMENT_ID = "G-BENCH00001"
FRAMEWORK_REQUESTS, QUICK_FRAMEWORK_REQUESTS = 3000, 300
RETRIES = 20
MONTH_DAYS = 30.4
LOGGER = "ga4_stitch"
LOG_SETTINGS = {
    "info": ("INFO", False),
    "warning": ("WARNING", False),
    "info_excluded": ("INFO", True),
    "warning_excluded": ("WARNING", True),
}
"""Name -> (LOG_LEVEL, request entries of acknowledged pushes excluded) priced for each
design."""
NOOP_FUNCTION = """import functions_framework

from shared.adapters.push import delivery


@functions_framework.http
def noop(request):
    delivery(request.get_data(), request.headers)
    return "", 200
"""


class CapturingPublisher(RecordingPublisher):
    """Counts by topic, like ``RecordingPublisher``, and keeps every message in order."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[OutgoingMessage] = []

    def publish_all(self, messages: Sequence[OutgoingMessage]) -> None:
        super().publish_all(messages)
        with self._lock:
            self.published.extend(messages)


class NoGa4:
    """``Ga4Sender`` that sends nothing: GA4 is free and not what is measured."""

    def send(self, measurement_id: str, body: bytes, event_id: str | None = None) -> None:
        return None

    def validate_remote(self, measurement_id: str, body: bytes) -> list[dict[str, Any]]:
        return []


class LogCounter(logging.Handler):
    """Counts, by severity, the lines a function's records become on stdout and their
    bytes, formatted by the functions' own ``CloudLoggingFormatter`` (the newline left
    out: Cloud Logging does not keep it). ``cpu_seconds`` is the CPU the formatting took,
    so a caller timing the function can leave it out. Prints nothing."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(CloudLoggingFormatter())
        self.lines: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.cpu_seconds = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        began = time.process_time()
        line = self.format(record)
        self.lines[record.levelname] += 1
        self.bytes[record.levelname] += len(line.encode())
        self.cpu_seconds += time.process_time() - began

    def per_event(self, events: int) -> dict[str, cost.LogLines]:
        """Lines and bytes per event by severity, over ``events`` events."""
        return {
            severity: cost.LogLines(lines=count / events, bytes=self.bytes[severity] / events)
            for severity, count in sorted(self.lines.items())
        }


@contextmanager
def counting_logs(counter: LogCounter, level: str) -> Iterator[LogCounter]:
    """``counter`` on the ``ga4_stitch`` logger at LOG_LEVEL ``level`` for the block, as
    ``shared.logs.configure`` sets it up in a function; the logger's level and handlers are
    what they were afterwards."""
    logger = logging.getLogger(LOGGER)
    previous = logger.level
    logger.setLevel(level)
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(previous)


@dataclass
class Delivered:
    """What delivering messages to one function took: HTTP requests, and the messages it
    acknowledged (one 2xx answer each; every other request failed, and Pub/Sub pushed
    the message again). ``acknowledged <= requests``."""

    requests: int = 0
    acknowledged: int = 0


def envelope(
    data: bytes, message_id: str, attributes: Mapping[str, str], ordering_key: str | None
) -> dict[str, Any]:
    """A push subscription's request body, as functions-framework hands it over."""
    message: dict[str, Any] = {
        "data": base64.b64encode(data).decode(),
        "messageId": message_id,
        "publishTime": PUBLISH_TIME,
        "attributes": dict(attributes),
    }
    if ordering_key:
        message["orderingKey"] = ordering_key
    return {"message": message, "subscription": "projects/p/subscriptions/bench"}


def run(env: BenchEnv, *, quick: bool, work: Path, results: Path | None = None) -> dict[str, Any]:
    prices = cost.load_prices()
    log_level = cost.terraform_default("log_level")
    excluded = cost.terraform_default("exclude_pipeline_request_logs") == "true"
    stream = make_stream(QUICK_PEOPLE if quick else PEOPLE, seed=SEED)
    raw = _raw_messages(stream)
    stitch = _stitch(env, stream, raw, prices, log_level)
    baseline = _baseline(env, stream, raw, prices, log_level)
    framework = _framework_cpu_ms(
        work, raw, QUICK_FRAMEWORK_REQUESTS if quick else FRAMEWORK_REQUESTS
    )
    sizing = {
        "resolve": cost.terraform_sizing("resolve_function"),
        "forward": cost.terraform_sizing("forward_function"),
    }
    usage = {
        "stitch": _usage(
            stitch, framework, sizing, prices, level=log_level, exclude_acknowledged=excluded
        ),
        "baseline": _usage(
            baseline, framework, {"resolve": sizing["resolve"]}, prices, level=log_level
        ),
    }
    table = cost.monthly_table(usage, prices)
    e2e = _e2e_cpu(results)
    return {
        "stream": {"people": stream.config.people, "seed": SEED, **stream.stats},
        "deliveries": len(raw),
        "framework_cpu_ms_per_request": round(framework, 4),
        "sizing": {name: vars(each) for name, each in sizing.items()},
        "cpu_model": "in-process CPU of each function's work + functions-framework's CPU "
        "per push request; instance time = CPU / (vCPU x 60% autoscaling target)",
        "log_setup": {
            "log_level": log_level,
            "stitch_request_logs_excluded": excluded,
            "baseline_request_logs_excluded": False,
            "free_gib_per_project_month": prices.logging_free_gib,
        },
        "designs": {"stitch": stitch, "baseline": baseline},
        "usage_per_event": {name: each.to_json() for name, each in usage.items()},
        "per_million_events": {
            name: each.times(1_000_000).to_json() for name, each in usage.items()
        },
        "monthly": table,
        "logging": {
            name: _logging(design, usage[name], prices)
            for name, design in (("stitch", stitch), ("baseline", baseline))
        },
        "events_per_second_per_instance": _throughput(stitch, baseline, framework, e2e),
        "e2e_process_cpu_ms_per_event": e2e,
        "isolated_ceiling_per_million": {
            name: vars(
                cost.isolated_ceiling(
                    figures["requests"] * 1_000_000, figures["latency_ms_p50"], sizing[name]
                )
            )
            for name, figures in stitch["functions"].items()
        },
    }


# ----------------------------------------------------------------------- the stream


def _raw_messages(stream: Stream) -> list[dict[str, Any]]:
    """Each delivery as the GTM SC tag publishes it: compact JSON data, ``client_id`` and
    ``event_name`` attributes, the canonical client id as ordering key."""
    canonical = CanonicalKeys()
    messages = []
    for line, payload in enumerate(stream.deliveries, start=1):
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        event = input_event(line, data, payload, canonical)
        messages.append(
            {"data": data, "attributes": event.attributes, "ordering_key": event.ordering_key}
        )
    return messages


def _sizes(messages: Sequence[Mapping[str, Any]], prices: cost.Prices) -> list[int]:
    return [
        cost.message_bytes(m["data"], m["attributes"], m["ordering_key"], prices) for m in messages
    ]


def _topic(prices: cost.Prices, sizes: Sequence[int], deliveries: int) -> dict[str, Any]:
    """One topic's traffic: every message published alone, and pushed ``deliveries``
    times in all (0 without a subscription)."""
    billed = sum(cost.request_bytes([size], prices) for size in sizes)
    mean = sum(sizes) / len(sizes) if sizes else 0.0
    per_delivery = billed / len(sizes) if sizes else 0.0
    return {
        "messages": len(sizes),
        "mean_message_bytes": round(mean, 1),
        "max_message_bytes": max(sizes, default=0),
        "published_billed_bytes": billed,
        "deliveries": deliveries,
        "delivered_billed_bytes": round(per_delivery * deliveries),
        "actual_bytes": sum(sizes),
    }


# --------------------------------------------------------------------- the designs


def _timed(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """``work()``, its CPU seconds in this process and its wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    value = work()
    return value, time.process_time() - cpu, time.perf_counter() - wall


def _deliver(
    handle: Callable[[dict[str, Any], str], Any], body: dict[str, Any], mid: str
) -> tuple[int, bool]:
    """Deliver until acknowledged (a ``TransientError`` is Pub/Sub's redelivery): the
    number of requests it took, and whether the last one acknowledged the message."""
    for attempt in range(1, RETRIES + 1):
        try:
            handle(body, mid)
        except TransientError:
            continue
        return attempt, True
    return RETRIES, False


def _deliver_all(
    handle: Callable[[dict[str, Any], str], Any],
    messages: Sequence[tuple[bytes, Mapping[str, str], str | None]],
    prefix: str,
    latencies: list[float],
) -> Delivered:
    """Deliver every (data, attributes, ordering key) in order; the requests it took and
    the messages acknowledged, and each delivery's wall time appended to ``latencies``."""
    delivered = Delivered()
    for number, (data, attributes, ordering_key) in enumerate(messages, start=1):
        mid = f"{prefix}{number}"
        body = envelope(data, mid, attributes, ordering_key)
        began = time.perf_counter()
        requests, acknowledged = _deliver(handle, body, mid)
        delivered.requests += requests
        delivered.acknowledged += acknowledged
        latencies.append(time.perf_counter() - began)
    return delivered


def _deliveries(
    raw: Sequence[Mapping[str, Any]],
) -> list[tuple[bytes, Mapping[str, str], str | None]]:
    return [(m["data"], m["attributes"], m["ordering_key"]) for m in raw]


def _stitch(
    env: BenchEnv,
    stream: Stream,
    raw: Sequence[Mapping[str, Any]],
    prices: cost.Prices,
    log_level: str,
) -> dict[str, Any]:
    prefix = env.fresh_prefix("cost_stitch")
    settings = Settings(project=PROJECT, collection_prefix=prefix)
    resolve_counter, forward_counter = RpcCounter(), RpcCounter()
    publisher = CapturingPublisher()
    resolver = stitch_runtime(resolve_counter, settings, stream.now_micros, publisher)
    resolve_latencies: list[float] = []
    with counting_logs(LogCounter(), log_level) as resolve_logs:
        resolved, resolve_cpu, _ = _timed(
            lambda: _deliver_all(resolver.handle, _deliveries(raw), "r", resolve_latencies)
        )
    topics = settings.topics
    by_topic: dict[str, list[OutgoingMessage]] = {}
    for message in publisher.published:
        by_topic.setdefault(message.topic, []).append(message)
    enriched = by_topic.get(topics.enriched, [])

    forwarder = ForwardRuntime(
        rules=PayloadRules(default_measurement_id=MEASUREMENT_ID),
        sender=NoGa4(),
        ledger=FirestoreForwardLedger(
            counting_client(PROJECT, forward_counter),
            settings.collection("forwarded"),
        ),
        publisher=(forward_publisher := CapturingPublisher()),
        dead_letter_topic=topics.forward_dead_letter,
        clock=lambda: stream.now_micros,
        sleep=lambda _: None,
    )
    forward_latencies: list[float] = []
    published = [(m.data, m.attributes, m.ordering_key) for m in enriched]
    with counting_logs(LogCounter(), log_level) as forward_logs:
        forwarded, forward_cpu, _ = _timed(
            lambda: _deliver_all(forwarder.handle, published, "f", forward_latencies)
        )
    stored = _stored_bytes(prefix, ledger=settings.collection("forwarded"))

    def as_dicts(messages: Sequence[OutgoingMessage]) -> list[dict[str, Any]]:
        return [
            {"data": m.data, "attributes": m.attributes, "ordering_key": m.ordering_key}
            for m in messages
        ]

    dead = [*by_topic.get(topics.resolve_dead_letter, []), *forward_publisher.published]
    deliveries = len(raw)
    return {
        "deliveries": deliveries,
        "firestore": {
            "resolve": _documents(resolve_counter, deliveries),
            "forward": _documents(forward_counter, deliveries),
        },
        "pubsub": {
            "raw_events": _topic(prices, _sizes(raw, prices), resolved.requests),
            "enriched_events": _topic(
                prices, _sizes(as_dicts(enriched), prices), forwarded.requests
            ),
            "identity_links": _topic(
                prices, _sizes(as_dicts(by_topic.get(topics.identity_links, [])), prices), 0
            ),
            "dead_letters": _topic(prices, _sizes(as_dicts(dead), prices), 0),
        },
        "functions": {
            "resolve": _function(
                resolved, resolve_cpu, resolve_latencies, deliveries, resolve_logs
            ),
            "forward": _function(
                forwarded, forward_cpu, forward_latencies, deliveries, forward_logs
            ),
        },
        "stored_bytes": stored,
    }


def _baseline(
    env: BenchEnv,
    stream: Stream,
    raw: Sequence[Mapping[str, Any]],
    prices: cost.Prices,
    log_level: str,
) -> dict[str, Any]:
    """The guides' function writes no log line (``benchmarks/baseline.py`` has no logger):
    its lines, counted as ga4-stitch's are, come to none, and only Cloud Run's request
    entries are billed for it."""
    prefix = env.fresh_prefix("cost_baseline")
    counter = RpcCounter()
    resolver = BaselineResolver(counting_client(PROJECT, counter), collection_prefix=prefix)
    latencies: list[float] = []

    def handle(body: dict[str, Any], message_id: str) -> None:
        from google.api_core.exceptions import InvalidArgument

        from shared.domain.events import decode_raw_event

        message = message_from_cloud_event(body, message_id)
        try:
            payload = message.json_object()
            decode_raw_event(payload, message_id, None)
            line = sent_line(payload, resolver.resolve(payload))
        except (InvalidEvent, ValueError, InvalidArgument):
            return
        json.dumps(line["request"], separators=(",", ":")).encode()

    with counting_logs(LogCounter(), log_level) as logs:
        delivered, cpu_seconds, _ = _timed(
            lambda: _deliver_all(handle, _deliveries(raw), "b", latencies)
        )
    deliveries = len(raw)
    return {
        "deliveries": deliveries,
        "firestore": {"resolve": _documents(counter, deliveries)},
        "pubsub": {"raw_events": _topic(prices, _sizes(raw, prices), delivered.requests)},
        "functions": {"resolve": _function(delivered, cpu_seconds, latencies, deliveries, logs)},
        "stored_bytes": _stored_bytes(prefix, ledger=None),
    }


def _documents(counter: RpcCounter, deliveries: int) -> dict[str, Any]:
    documents = counter.documents()
    billed = cost.billed_documents(documents)
    return {
        "counted": dict(documents),
        "billed": billed,
        "per_event": {kind: round(n / deliveries, 4) for kind, n in billed.items()},
        "rpcs": dict(counter.calls()),
        "rpc_failures": dict(counter.failures()),
    }


def _function(
    delivered: Delivered,
    cpu_seconds: float,
    latencies: Sequence[float],
    deliveries: int,
    logs: LogCounter,
) -> dict[str, Any]:
    """One function's figures per delivery of the stream; its CPU without the formatting
    of its log lines (``log_format_cpu_ms_per_request``)."""
    requests = max(1, delivered.requests)
    return {
        "requests": round(delivered.requests / deliveries, 4),
        "acknowledged": round(delivered.acknowledged / deliveries, 4),
        "cpu_ms_per_request": round(1000 * (cpu_seconds - logs.cpu_seconds) / requests, 4),
        "log_format_cpu_ms_per_request": round(1000 * logs.cpu_seconds / requests, 4),
        "latency_ms_p50": round(1000 * statistics.median(latencies), 3) if latencies else 0.0,
        "logs": {
            severity: {"lines": round(lines.lines, 4), "bytes": round(lines.bytes, 2)}
            for severity, lines in logs.per_event(deliveries).items()
        },
    }


def _stored_bytes(prefix: str, ledger: str | None) -> dict[str, int]:
    """Document bytes (Firestore's size rules) in the collections under ``prefix``: the
    forwarder's ledger apart, since its documents expire after 8 days."""
    from google.cloud import firestore

    client = firestore.Client(project=PROJECT)
    totals = {"state": 0, "ledger": 0}
    for collection in client.collections():
        if not collection.id.startswith(prefix):
            continue
        kind = "ledger" if collection.id == ledger else "state"
        for snapshot in collection.stream():
            path = snapshot.reference.path.split("/")
            totals[kind] += document_size(path, snapshot.to_dict() or {})
    return totals


def _framework_cpu_ms(work: Path, raw: Sequence[Mapping[str, Any]], requests: int) -> float:
    """CPU ms functions-framework spends on one push request to a function that does
    nothing but read it: Flask routing, the push body parsed, the answer."""
    import functions_framework

    source = work / "cost_noop" / "main.py"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(NOOP_FUNCTION)
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="noop", source=str(source), signature_type="http"
    )
    client = app.test_client()
    bodies = [
        envelope(m["data"], f"n{i}", m["attributes"], m["ordering_key"])
        for i, m in enumerate(raw[:200])
    ]
    for body in bodies[:20]:
        client.post("/", json=body)

    def serve() -> None:
        for number in range(requests):
            answer = client.post("/", json=bodies[number % len(bodies)])
            if answer.status_code >= 300:
                raise RuntimeError(f"the no-op function answered {answer.status_code}")

    _, cpu_seconds, _ = _timed(serve)
    return 1000 * cpu_seconds / requests


# ---------------------------------------------------------------------- the model


def _function_logs(design: Mapping[str, Any]) -> dict[str, cost.FunctionLogs]:
    """Each function's ``cost.FunctionLogs`` per event, from its measured figures."""
    return {
        name: cost.FunctionLogs(
            requests=figures["requests"],
            acknowledged=figures["acknowledged"],
            lines={
                severity: cost.LogLines(lines=line["lines"], bytes=line["bytes"])
                for severity, line in figures["logs"].items()
            },
        )
        for name, figures in design["functions"].items()
    }


def _usage(
    design: dict[str, Any],
    framework_ms: float,
    sizing: Mapping[str, cost.Sizing],
    prices: cost.Prices,
    *,
    level: str,
    exclude_acknowledged: bool = False,
) -> cost.Usage:
    deliveries = design["deliveries"]
    reads = writes = deletes = 0.0
    for figures in design["firestore"].values():
        reads += figures["billed"]["read"] / deliveries
        writes += figures["billed"]["write"] / deliveries
        deletes += figures["billed"]["delete"] / deliveries
    pubsub = sum(
        topic["published_billed_bytes"] + topic["delivered_billed_bytes"]
        for topic in design["pubsub"].values()
    )
    stored = design["stored_bytes"]
    ledger_share = min(1.0, LEDGER_TTL_MICROS / 86_400_000_000 / MONTH_DAYS)
    compute = [
        cost.compute_per_event(
            figures["requests"],
            figures["cpu_ms_per_request"] + framework_ms,
            sizing[name],
            prices.run_cpu_target,
        )
        for name, figures in design["functions"].items()
    ]
    return cost.Usage(
        firestore_reads=reads,
        firestore_writes=writes,
        firestore_deletes=deletes,
        stored_bytes=(stored["state"] + stored["ledger"] * ledger_share) / deliveries,
        pubsub_bytes=pubsub / deliveries,
        function_requests=sum(c.requests for c in compute),
        vcpu_seconds=sum(c.vcpu_seconds for c in compute),
        gib_seconds=sum(c.gib_seconds for c in compute),
        log_bytes=cost.billed_log_bytes(
            _function_logs(design),
            prices,
            level=level,
            exclude_acknowledged_requests=exclude_acknowledged,
        ).total,
    )


def _logging(design: Mapping[str, Any], usage: cost.Usage, prices: cost.Prices) -> dict[str, Any]:
    """One design's Cloud Logging: entries per event, GiB per 1M events by kind, and under
    each of ``LOG_SETTINGS`` the monthly Cloud Logging line and total bill (list prices and
    after the free tiers), the rest of ``usage`` unchanged."""
    logs = _function_logs(design)

    def gib(per_event: float) -> float:
        return round(per_event * 1_000_000 / cost.GIB, 3)

    billed = {
        name: cost.billed_log_bytes(
            logs, prices, level=level, exclude_acknowledged_requests=exclude
        )
        for name, (level, exclude) in LOG_SETTINGS.items()
    }
    settings: dict[str, Any] = {}
    for name, setting in billed.items():
        variant = replace(usage, log_bytes=setting.total)
        monthly = []
        for events in cost.MONTHLY_EVENTS:
            row: dict[str, Any] = {"events_per_month": events}
            for key, free_tier in (("list", False), ("free_tier", True)):
                bill = cost.monthly_bill(variant, events, prices, free_tier=free_tier)
                row[key] = {"cloud_logging": bill["cloud_logging"], "total": bill["total"]}
            monthly.append(row)
        settings[name] = {"gib_per_million_events": gib(setting.total), "monthly": monthly}
    return {
        "entries_per_event": {
            "application": round(
                sum(line.lines for each in logs.values() for line in each.lines.values()), 4
            ),
            "requests": round(sum(each.requests for each in logs.values()), 4),
            "acknowledged_requests": round(sum(each.acknowledged for each in logs.values()), 4),
        },
        "gib_per_million_events": {
            "application_info": gib(billed["info"].application),
            "application_warning": gib(billed["warning"].application),
            "requests": gib(billed["info"].requests),
            "requests_after_exclusion": gib(billed["info_excluded"].requests),
        },
        "settings": settings,
    }


def _e2e_cpu(results: Path | None) -> dict[str, float] | None:
    """Per-process CPU ms per delivery of the end-to-end burst, if it was measured."""
    path = (results or Path(__file__).resolve().parent / "results") / "e2e.json"
    try:
        document = json.loads(path.read_text())
        figures = document["result"]["passes"]["burst"]["process_cpu_ms_per_event"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {str(name): float(value) for name, value in figures.items()}


def _throughput(
    stitch: dict[str, Any],
    baseline: dict[str, Any],
    framework_ms: float,
    e2e: Mapping[str, float] | None,
) -> dict[str, Any]:
    """Events per second one instance of 1 vCPU sustains with its CPU saturated: 1000 ms /
    CPU ms per event (the function's work + the framework's), and at the 60% target."""
    figures: dict[str, Any] = {}
    for name, design in (("stitch", stitch), ("baseline", baseline)):
        for function, measured in design["functions"].items():
            per_event = measured["cpu_ms_per_request"] + framework_ms
            saturated = cost.events_per_second_per_instance(per_event)
            figures[f"{name}/{function}"] = {
                "cpu_ms_per_event": round(per_event, 3),
                "saturated": round(saturated, 1),
                "at_cpu_target": round(saturated * 0.6, 1),
            }
    if e2e:
        for function in ("resolve", "forward"):
            value = e2e.get(f"{function} function")
            if value:
                figures[f"stitch/{function} (e2e process)"] = {
                    "cpu_ms_per_event": value,
                    "saturated": round(cost.events_per_second_per_instance(value), 1),
                    "at_cpu_target": round(0.6 * cost.events_per_second_per_instance(value), 1),
                }
    return figures


# ---------------------------------------------------------------------- the tables


def _money(value: float) -> str:
    return f"${value:,.2f}"


def rows(result: dict[str, Any]) -> list[Row]:
    per_million = result["per_million_events"]
    base, ours = per_million["baseline"], per_million["stitch"]
    table = []
    for key, label in (
        ("firestore_reads", "Firestore document reads per 1M events"),
        ("firestore_writes", "Firestore document writes per 1M events"),
        ("firestore_deletes", "Firestore document deletes per 1M events"),
        ("pubsub_bytes", "Pub/Sub billed GiB per 1M events"),
        ("function_requests", "function requests per 1M events"),
        ("vcpu_seconds", "vCPU-seconds per 1M events"),
        ("log_bytes", "Cloud Logging billed GiB per 1M events (as deployed)"),
    ):
        scale = 1 / cost.GIB if key in ("pubsub_bytes", "log_bytes") else 1
        b, o = round(base[key] * scale, 2), round(ours[key] * scale, 2)
        table.append(Row("cost", label, b, o, ratio(o, b), "", ""))
    for row in result["monthly"]:
        events = row["events_per_month"]
        for key, label in (("list", "list prices"), ("free_tier", "after free tiers")):
            bills = row[key]
            table.append(
                Row(
                    "cost",
                    f"USD per month, {events:,} events ({label})",
                    _money(bills["baseline"]["total"]),
                    _money(bills["stitch"]["total"]),
                    bills["ratio"],
                    "",
                    "",
                )
            )
    table += _logging_rows(result)
    throughput = result["events_per_second_per_instance"]
    resolve = throughput["stitch/resolve"]["saturated"]
    table.append(
        Row(
            "cost",
            "events/s one 1-vCPU instance sustains (CPU saturated; resolve, forward)",
            throughput["baseline/resolve"]["saturated"],
            f"{resolve:.0f}, {throughput['stitch/forward']['saturated']:.0f}",
            ratio(resolve, throughput["baseline/resolve"]["saturated"]),
            "",
            "",
        )
    )
    return table


def _setting_label(name: str) -> str:
    """``INFO``, ``WARNING + exclusion``...: one of ``LOG_SETTINGS`` as the tables say it."""
    level, excluded = LOG_SETTINGS[name]
    return f"{level} + exclusion" if excluded else level


def _logging_dollars(design: Mapping[str, Any], index: int) -> str:
    """Cloud Logging's line after the free tiers at ``MONTHLY_EVENTS[index]``, under each
    of ``LOG_SETTINGS`` in order."""
    return " / ".join(
        _money(design["settings"][name]["monthly"][index]["free_tier"]["cloud_logging"])
        for name in LOG_SETTINGS
    )


def _logging_rows(result: dict[str, Any]) -> list[Row]:
    """Cloud Logging's split (application entries at INFO and WARNING, request entries
    with and without the exclusion), its monthly dollars under each setting, and its share
    of the bill as deployed."""
    logs = result["logging"]
    base, ours = logs["baseline"], logs["stitch"]
    table = []
    for key, label in (
        ("application_info", "application log GiB per 1M events, LOG_LEVEL=INFO"),
        ("application_warning", "application log GiB per 1M events, LOG_LEVEL=WARNING"),
        ("requests", "Cloud Run request log GiB per 1M events (an entry per function request)"),
        (
            "requests_after_exclusion",
            "Cloud Run request log GiB per 1M events, acknowledged pushes excluded",
        ),
    ):
        b, o = base["gib_per_million_events"][key], ours["gib_per_million_events"][key]
        table.append(Row("cost", label, b, o, ratio(o, b), "", ""))
    free = result["log_setup"]["free_gib_per_project_month"]
    settings = " / ".join(_setting_label(name) for name in LOG_SETTINGS)
    for index, events in enumerate(cost.MONTHLY_EVENTS):
        table.append(
            Row(
                "cost",
                f"Cloud Logging USD per month, {events:,} events, after the free {free:g} GiB "
                f"({settings})",
                _logging_dollars(base, index),
                _logging_dollars(ours, index),
                None,
                "",
                "",
            )
        )
    billion = result["monthly"][-1]
    shares = {
        design: billion["list"][design]["cloud_logging"] / billion["list"][design]["total"]
        for design in ("baseline", "stitch")
    }
    table.append(
        Row(
            "cost",
            f"Cloud Logging share of the bill, {billion['events_per_month']:,} events, "
            "list prices (as deployed)",
            f"{shares['baseline']:.0%}",
            f"{shares['stitch']:.0%}",
            None,
            "",
            "",
        )
    )
    return table


def markdown_section(result: dict[str, Any]) -> str:
    """The per-month table for TABLE.md: both designs, list and after free tiers."""
    lines = [
        "",
        "## Cost per month (benchmarks/cost_bench.py, prices in benchmarks/prices.json)",
        "",
        "| events / month | baseline | ga4-stitch | ratio | baseline, free tiers | "
        "ga4-stitch, free tiers | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["monthly"]:
        listed, free = row["list"], row["free_tier"]
        lines.append(
            f"| {row['events_per_month']:,} | {_money(listed['baseline']['total'])} | "
            f"{_money(listed['stitch']['total'])} | {listed['ratio']:.2f}x | "
            f"{_money(free['baseline']['total'])} | {_money(free['stitch']['total'])} | "
            + (f"{free['ratio']:.2f}x |" if free["ratio"] is not None else "- |")
        )
    lines += ["", "By line, 1B events a month, list prices:", ""]
    billion = result["monthly"][-1]["list"]
    lines += ["| line | baseline | ga4-stitch |", "|---|---|---|"]
    for line in (*cost.LINES, "total"):
        lines.append(
            f"| {line} | {_money(billion['baseline'][line])} | {_money(billion['stitch'][line])} |"
        )
    setup, logs = result["log_setup"], result["logging"]
    deployed = "with" if setup["stitch_request_logs_excluded"] else "without"
    lines += [
        "",
        f"Cloud Logging per month after the free {setup['free_gib_per_project_month']:g} GiB "
        "a project, by LOG_LEVEL and with the exclusion of request log entries of "
        f"acknowledged pushes (`exclude_pipeline_request_logs`); as deployed: LOG_LEVEL="
        f"{setup['log_level']}, ga4-stitch {deployed} the exclusion, the baseline without:",
        "",
        "| events / month | baseline | "
        + " | ".join(f"ga4-stitch, {_setting_label(name)}" for name in LOG_SETTINGS)
        + " |",
        "|---|---|" + "---|" * len(LOG_SETTINGS),
    ]
    for index, events in enumerate(cost.MONTHLY_EVENTS):
        baseline = result["monthly"][index]["free_tier"]["baseline"]
        ours = [
            _money(logs["stitch"]["settings"][name]["monthly"][index]["free_tier"]["cloud_logging"])
            for name in LOG_SETTINGS
        ]
        lines.append(
            f"| {events:,} | {_money(baseline['cloud_logging'])} | " + " | ".join(ours) + " |"
        )
    return "\n".join(lines) + "\n"
