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
function behind ``functions_framework.create_app``, through Flask's test client), and the
document bytes left in the database. ``benchmarks/cost.py`` turns them into a monthly
bill with ``benchmarks/prices.json``. When ``results/e2e.json`` holds per-process CPU, it
is reported beside the in-process figure as a cross-check.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
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
from shared.services.forward import ForwardRuntime
from shared.settings import Settings

PEOPLE, QUICK_PEOPLE, SEED = 100, 15, 1
PUBLISH_TIME = "2025-11-22T08:26:40.000Z"
MEASUREMENT_ID = "G-BENCH00001"
FRAMEWORK_REQUESTS, QUICK_FRAMEWORK_REQUESTS = 3000, 300
RETRIES = 20
MONTH_DAYS = 30.4
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
    stream = make_stream(QUICK_PEOPLE if quick else PEOPLE, seed=SEED)
    raw = _raw_messages(stream)
    stitch = _stitch(env, stream, raw, prices)
    baseline = _baseline(env, stream, raw, prices)
    framework = _framework_cpu_ms(
        work, raw, QUICK_FRAMEWORK_REQUESTS if quick else FRAMEWORK_REQUESTS
    )
    sizing = {
        "resolve": cost.terraform_sizing("resolve_function"),
        "forward": cost.terraform_sizing("forward_function"),
    }
    usage = {
        "stitch": _usage(stitch, framework, sizing, prices),
        "baseline": _usage(baseline, framework, {"resolve": sizing["resolve"]}, prices),
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
        "designs": {"stitch": stitch, "baseline": baseline},
        "usage_per_event": {name: each.to_json() for name, each in usage.items()},
        "per_million_events": {
            name: each.times(1_000_000).to_json() for name, each in usage.items()
        },
        "monthly": table,
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


def _deliver(handle: Callable[[dict[str, Any], str], Any], body: dict[str, Any], mid: str) -> int:
    """Deliver until acknowledged (a ``TransientError`` is Pub/Sub's redelivery); the
    number of requests it took."""
    for attempt in range(1, RETRIES + 1):
        try:
            handle(body, mid)
        except TransientError:
            continue
        return attempt
    return RETRIES


def _deliver_all(
    handle: Callable[[dict[str, Any], str], Any],
    messages: Sequence[tuple[bytes, Mapping[str, str], str | None]],
    prefix: str,
    latencies: list[float],
) -> int:
    """Deliver every (data, attributes, ordering key) in order; the requests it took, and
    each delivery's wall time appended to ``latencies``."""
    requests = 0
    for number, (data, attributes, ordering_key) in enumerate(messages, start=1):
        mid = f"{prefix}{number}"
        body = envelope(data, mid, attributes, ordering_key)
        began = time.perf_counter()
        requests += _deliver(handle, body, mid)
        latencies.append(time.perf_counter() - began)
    return requests


def _deliveries(
    raw: Sequence[Mapping[str, Any]],
) -> list[tuple[bytes, Mapping[str, str], str | None]]:
    return [(m["data"], m["attributes"], m["ordering_key"]) for m in raw]


def _stitch(
    env: BenchEnv, stream: Stream, raw: Sequence[Mapping[str, Any]], prices: cost.Prices
) -> dict[str, Any]:
    prefix = env.fresh_prefix("cost_stitch")
    settings = Settings(project=PROJECT, collection_prefix=prefix)
    resolve_counter, forward_counter = RpcCounter(), RpcCounter()
    publisher = CapturingPublisher()
    resolver = stitch_runtime(resolve_counter, settings, stream.now_micros, publisher)
    resolve_latencies: list[float] = []
    resolve_requests, resolve_cpu, _ = _timed(
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
    forward_requests, forward_cpu, _ = _timed(
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
            "raw_events": _topic(prices, _sizes(raw, prices), resolve_requests),
            "enriched_events": _topic(prices, _sizes(as_dicts(enriched), prices), forward_requests),
            "identity_links": _topic(
                prices, _sizes(as_dicts(by_topic.get(topics.identity_links, [])), prices), 0
            ),
            "dead_letters": _topic(prices, _sizes(as_dicts(dead), prices), 0),
        },
        "functions": {
            "resolve": _function(resolve_requests, resolve_cpu, resolve_latencies, deliveries),
            "forward": _function(forward_requests, forward_cpu, forward_latencies, deliveries),
        },
        "stored_bytes": stored,
    }


def _baseline(
    env: BenchEnv, stream: Stream, raw: Sequence[Mapping[str, Any]], prices: cost.Prices
) -> dict[str, Any]:
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

    requests, cpu_seconds, _ = _timed(
        lambda: _deliver_all(handle, _deliveries(raw), "b", latencies)
    )
    deliveries = len(raw)
    return {
        "deliveries": deliveries,
        "firestore": {"resolve": _documents(counter, deliveries)},
        "pubsub": {"raw_events": _topic(prices, _sizes(raw, prices), requests)},
        "functions": {"resolve": _function(requests, cpu_seconds, latencies, deliveries)},
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
    requests: int, cpu_seconds: float, latencies: Sequence[float], deliveries: int
) -> dict[str, Any]:
    return {
        "requests": round(requests / deliveries, 4),
        "cpu_ms_per_request": round(1000 * cpu_seconds / max(1, requests), 4),
        "latency_ms_p50": round(1000 * statistics.median(latencies), 3) if latencies else 0.0,
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


def _usage(
    design: dict[str, Any],
    framework_ms: float,
    sizing: Mapping[str, cost.Sizing],
    prices: cost.Prices,
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
    )


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
    ):
        scale = 1 / cost.GIB if key == "pubsub_bytes" else 1
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
    return "\n".join(lines) + "\n"
