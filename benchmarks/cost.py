"""The cost model: measured usage per event times list prices, per month.

Pure arithmetic, no I/O but reading ``prices.json`` and ``terraform/variables.tf``; the
measurements come from ``benchmarks/cost_bench.py``. Every rule below is the billing
rule of the page ``prices.json`` cites for it:

- Firestore bills documents, not RPCs: each document read (a missing one too), written
  or deleted (``benchmarks.rpc_counter.request_documents``). Index entry writes are not
  billed in the Standard edition; their storage is, and is not counted here (so stored
  bytes are a floor). The writes of a ``Commit`` that failed are billed too
  (``FAILED_WRITES_BILLED``), which can only overstate the bill.
- Pub/Sub bills throughput: every publish request and every push or pull delivery, each
  request at least ``minimum_bytes_per_request`` (1000 bytes). A message counts its data,
  attribute keys and values, 20 bytes of timestamp, its message id and its ordering key.
  Every message here is published and pushed alone (one request each): the GTM tag
  publishes one event per request, the resolver's enriched event and identity link go to
  different topics, and a push subscription delivers one message per request.
- Cloud Run (functions 2nd gen), request-based billing: an instance is billed while it
  processes at least one request; concurrent requests share that time. With concurrency
  80 and a steady stream, instances are kept busy and the autoscaler holds them near its
  CPU target (60%), so the instance time one request costs is its CPU time divided by
  ``cpu x target``: ``instance_seconds = cpu_seconds / (vcpu * target)``; vCPU-seconds
  are ``instance_seconds * vcpu`` and GiB-seconds ``instance_seconds * memory``.
  ``isolated_ceiling`` gives the other extreme (traffic so sparse no two requests
  overlap: each one billed alone, rounded up to 100 ms).
- Cloud Logging bills the log entries it stores in log buckets, per GiB (binary units),
  after a free allotment per project per month; 30 days of storage are included, and the
  ``_Default`` bucket keeps 30. A function's JSON line on stdout is one entry: the line's
  bytes plus the entry's own fields (resource type and labels, timestamps, severity,
  logName, insertId, labels), ``logging_entry_overhead_bytes``. Cloud Run writes one more
  entry per HTTP request, so per push delivery, whatever the function logs:
  ``logging_request_entry_bytes``. No page gives the billed size of an entry ("the actual
  size of the log entries prior to indexing"): both sizes are estimates counted from a
  real entry (``prices.json``). Lines below LOG_LEVEL are never written; the request-log
  exclusion (``terraform/logging.tf``) drops the entries of acknowledged (2xx) requests
  and no other.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

PRICES = Path(__file__).resolve().parent / "prices.json"
VARIABLES = Path(__file__).resolve().parent.parent / "terraform" / "variables.tf"
MONTHLY_EVENTS = (1_000_000, 100_000_000, 1_000_000_000)
DAYS_PER_MONTH = 30
GIB = 2**30
TIB = 2**40
BILLING_ROUND_SECONDS = 0.1
FAILED_WRITES_BILLED = True


# --------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class Prices:
    firestore_read_per_100k: float
    firestore_write_per_100k: float
    firestore_delete_per_100k: float
    firestore_stored_gib_month: float
    firestore_free_per_day: Mapping[str, int]
    firestore_free_stored_gib: float
    pubsub_per_tib: float
    pubsub_free_gib: float
    pubsub_minimum_bytes: int
    pubsub_timestamp_bytes: int
    pubsub_message_id_bytes: int
    pubsub_ordering_key_billed: bool
    bigquery_subscription_per_tib: float
    run_vcpu_second: float
    run_gib_second: float
    run_requests_per_million: float
    run_free: Mapping[str, float]
    run_cpu_target: float
    logging_per_gib: float
    logging_free_gib: float
    logging_entry_overhead_bytes: int
    logging_request_entry_bytes: int


def load_prices(path: Path = PRICES) -> Prices:
    data = json.loads(path.read_text(encoding="utf-8"))
    firestore, pubsub, run = data["firestore"], data["pubsub"], data["cloud_run"]
    logs = data["cloud_logging"]
    return Prices(
        firestore_read_per_100k=firestore["read_per_100k"],
        firestore_write_per_100k=firestore["write_per_100k"],
        firestore_delete_per_100k=firestore["delete_per_100k"],
        firestore_stored_gib_month=firestore["stored_gib_month"],
        firestore_free_per_day=firestore["free_per_day"],
        firestore_free_stored_gib=firestore["free_stored_gib"],
        pubsub_per_tib=pubsub["throughput_per_tib"],
        pubsub_free_gib=pubsub["free_gib_month"],
        pubsub_minimum_bytes=pubsub["minimum_bytes_per_request"],
        pubsub_timestamp_bytes=pubsub["timestamp_bytes"],
        pubsub_message_id_bytes=pubsub["message_id_bytes"],
        pubsub_ordering_key_billed=pubsub["ordering_key_billed"],
        bigquery_subscription_per_tib=pubsub["bigquery_subscription_per_tib"],
        run_vcpu_second=run["vcpu_second"],
        run_gib_second=run["gib_second"],
        run_requests_per_million=run["requests_per_million"],
        run_free=run["free_per_month"],
        run_cpu_target=run["autoscaling_cpu_target"],
        logging_per_gib=logs["ingestion_per_gib"],
        logging_free_gib=logs["free_gib_per_project_month"],
        logging_entry_overhead_bytes=logs["container_entry_overhead_bytes"],
        logging_request_entry_bytes=logs["request_entry_bytes"],
    )


# ------------------------------------------------------------------------ Firestore


def billed_documents(
    counts: Mapping[str, int], *, failed_billed: bool = FAILED_WRITES_BILLED
) -> dict[str, int]:
    """Reads, writes and deletes billed for ``RpcCounter.documents()`` counts."""
    billed = {kind: int(counts.get(kind, 0)) for kind in ("read", "write", "delete")}
    if failed_billed:
        billed["write"] += int(counts.get("write_failed", 0))
        billed["delete"] += int(counts.get("delete_failed", 0))
    return billed


# -------------------------------------------------------------------------- Pub/Sub


def message_bytes(
    data: bytes, attributes: Mapping[str, str], ordering_key: str | None, prices: Prices
) -> int:
    """A message's billable volume (before the per-request minimum)."""
    size = len(data) + prices.pubsub_timestamp_bytes + prices.pubsub_message_id_bytes
    size += sum(len(key.encode()) + len(value.encode()) for key, value in attributes.items())
    if ordering_key and prices.pubsub_ordering_key_billed:
        size += len(ordering_key.encode())
    return size


def request_bytes(message_sizes: Sequence[int], prices: Prices) -> int:
    """A publish, push or pull request's billable volume: its messages, at least the
    per-request minimum."""
    return max(prices.pubsub_minimum_bytes, sum(message_sizes))


# ---------------------------------------------------------------------- Cloud Run


@dataclass(frozen=True)
class Sizing:
    """One function's Terraform sizing."""

    vcpu: float
    memory_gib: float
    concurrency: int


def parse_memory_gib(text: str) -> float:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", text.strip())
    if match is None:
        raise ValueError(f"memory must look like 512Mi or 1Gi, got {text!r}")
    amount = int(match.group(1))
    return amount / 1024 if match.group(2) == "Mi" else float(amount)


def terraform_default(name: str, path: Path = VARIABLES) -> str:
    """The literal default of a scalar ``variable "<name>"`` (``log_level``: ``INFO``;
    a bool: ``true``), quotes removed."""
    text = path.read_text(encoding="utf-8")
    start = text.find(f'variable "{name}"')
    if start < 0:
        raise ValueError(f"no variable {name!r} in {path}")
    end = text.find("\nvariable ", start + 1)
    block = text[start : end if end > 0 else len(text)]
    match = re.search(r'^\s*default\s*=\s*"?([^"\n]*?)"?\s*$', block, re.MULTILINE)
    if match is None:
        raise ValueError(f"no scalar default for {name} in {path}")
    return match.group(1)


def terraform_sizing(name: str, path: Path = VARIABLES) -> Sizing:
    """The defaults of ``variable "<name>"`` (``resolve_function``, ``forward_function``)."""
    text = path.read_text(encoding="utf-8")
    start = text.find(f'variable "{name}"')
    if start < 0:
        raise ValueError(f"no variable {name!r} in {path}")
    block = text[start : text.find("validation", start)]

    def default(field: str) -> str:
        match = re.search(rf'{field}\s*=\s*optional\(\w+,\s*"?([^")]+)"?\)', block)
        if match is None:
            raise ValueError(f"no default {field} for {name} in {path}")
        return match.group(1)

    return Sizing(
        vcpu=float(default("cpu")),
        memory_gib=parse_memory_gib(default("memory")),
        concurrency=int(default("concurrency")),
    )


@dataclass(frozen=True)
class Compute:
    """Per event: function requests, and the vCPU- and GiB-seconds they are billed."""

    requests: float
    vcpu_seconds: float
    gib_seconds: float


def compute_per_event(
    requests_per_event: float, cpu_ms_per_request: float, sizing: Sizing, cpu_target: float
) -> Compute:
    """Steady traffic: instance time = CPU time / (vCPU x utilization target)."""
    instance_seconds = requests_per_event * cpu_ms_per_request / 1000 / (sizing.vcpu * cpu_target)
    return Compute(
        requests=requests_per_event,
        vcpu_seconds=instance_seconds * sizing.vcpu,
        gib_seconds=instance_seconds * sizing.memory_gib,
    )


def isolated_ceiling(
    requests_per_event: float, latency_ms_per_request: float, sizing: Sizing
) -> Compute:
    """Sparse traffic: every request billed alone, its latency rounded up to 100 ms."""
    billed = math.ceil(latency_ms_per_request / 1000 / BILLING_ROUND_SECONDS - 1e-9)
    instance_seconds = requests_per_event * max(1, billed) * BILLING_ROUND_SECONDS
    return Compute(
        requests=requests_per_event,
        vcpu_seconds=instance_seconds * sizing.vcpu,
        gib_seconds=instance_seconds * sizing.memory_gib,
    )


def events_per_second_per_instance(cpu_ms_per_event: float, vcpu: float = 1.0) -> float:
    """Events one instance of ``vcpu`` can process per second with its CPU saturated."""
    return 1000 * vcpu / cpu_ms_per_event if cpu_ms_per_event > 0 else math.inf


# -------------------------------------------------------------------- Cloud Logging

SEVERITY_RANK = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
"""Python's level names, which ``CloudLoggingFormatter`` writes as the entry's severity."""
DEFAULT_LOG_LEVEL = "INFO"


@dataclass(frozen=True)
class LogLines:
    """Application log lines at one severity and their JSON bytes (as written to stdout,
    without the newline), both per event."""

    lines: float
    bytes: float


@dataclass(frozen=True)
class FunctionLogs:
    """What one function makes Cloud Logging ingest per event: its application lines by
    severity (at the level it ran with), and its HTTP requests, each one Cloud Run request
    entry. ``acknowledged`` <= ``requests``: the requests answered 2xx (one per message
    the function acknowledged); the rest failed and were redelivered."""

    requests: float
    acknowledged: float
    lines: Mapping[str, LogLines] = field(default_factory=dict)


@dataclass(frozen=True)
class LogBytes:
    """Billed Cloud Logging bytes per event: application entries and request entries."""

    application: float
    requests: float

    @property
    def total(self) -> float:
        return self.application + self.requests


def entry_bytes(lines: LogLines, prices: Prices) -> float:
    """The billed bytes of the entries ``lines`` become: each line's JSON plus the
    entry's own fields."""
    return lines.bytes + lines.lines * prices.logging_entry_overhead_bytes


def billed_log_bytes(
    functions: Mapping[str, FunctionLogs],
    prices: Prices,
    *,
    level: str = DEFAULT_LOG_LEVEL,
    exclude_acknowledged_requests: bool = False,
) -> LogBytes:
    """Per event, what the functions' logs bill at LOG_LEVEL ``level`` (lines below it are
    never written; a severity not in ``SEVERITY_RANK`` is always kept; a level below the
    one the lines were counted at adds none), with or without the exclusion of request
    entries of acknowledged requests. The exclusion never touches application entries,
    nor the request entries of failed requests."""
    if level not in SEVERITY_RANK:
        raise ValueError(f"LOG_LEVEL must be one of {sorted(SEVERITY_RANK)}, got {level!r}")
    floor = SEVERITY_RANK[level]
    application = sum(
        entry_bytes(lines, prices)
        for logs in functions.values()
        for severity, lines in logs.lines.items()
        if SEVERITY_RANK.get(severity, math.inf) >= floor
    )
    entries = sum(
        logs.requests - (logs.acknowledged if exclude_acknowledged_requests else 0.0)
        for logs in functions.values()
    )
    return LogBytes(application, entries * prices.logging_request_entry_bytes)


# ------------------------------------------------------------------------- the bill


@dataclass(frozen=True)
class Usage:
    """What one event costs a design, in billing units (all per event)."""

    firestore_reads: float
    firestore_writes: float
    firestore_deletes: float
    stored_bytes: float
    """Document bytes stored at the end of the month, per event of that month."""
    pubsub_bytes: float
    """Billable Pub/Sub throughput: publishes and deliveries, minimum applied."""
    function_requests: float
    vcpu_seconds: float
    gib_seconds: float
    log_bytes: float
    """Billed Cloud Logging bytes: application entries and Cloud Run request entries."""

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    def times(self, events: float) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) * events for f in fields(self)})


LINES = (
    "firestore_reads",
    "firestore_writes",
    "firestore_deletes",
    "firestore_storage",
    "pubsub_throughput",
    "run_vcpu",
    "run_memory",
    "run_requests",
    "cloud_logging",
)


def monthly_bill(usage: Usage, events: int, prices: Prices, *, free_tier: bool) -> dict[str, float]:
    """USD per line for ``events`` in one month, and ``total``. ``free_tier``: subtract
    each free allowance (Firestore's daily ones over ``DAYS_PER_MONTH`` days, for one
    database; Pub/Sub's and Cloud Run's monthly ones, for the whole billing account;
    Cloud Logging's monthly one, for the project) as if this pipeline were the only
    user."""
    month = usage.times(events)

    def over(amount: float, free: float) -> float:
        return max(0.0, amount - free) if free_tier else amount

    free_day = prices.firestore_free_per_day
    bill = {
        "firestore_reads": over(month.firestore_reads, free_day["read"] * DAYS_PER_MONTH)
        / 100_000
        * prices.firestore_read_per_100k,
        "firestore_writes": over(month.firestore_writes, free_day["write"] * DAYS_PER_MONTH)
        / 100_000
        * prices.firestore_write_per_100k,
        "firestore_deletes": over(month.firestore_deletes, free_day["delete"] * DAYS_PER_MONTH)
        / 100_000
        * prices.firestore_delete_per_100k,
        "firestore_storage": over(month.stored_bytes / GIB, prices.firestore_free_stored_gib)
        * prices.firestore_stored_gib_month,
        "pubsub_throughput": over(month.pubsub_bytes, prices.pubsub_free_gib * GIB)
        / TIB
        * prices.pubsub_per_tib,
        "run_vcpu": over(month.vcpu_seconds, prices.run_free["vcpu_seconds"])
        * prices.run_vcpu_second,
        "run_memory": over(month.gib_seconds, prices.run_free["gib_seconds"])
        * prices.run_gib_second,
        "run_requests": over(month.function_requests, prices.run_free["requests"])
        / 1_000_000
        * prices.run_requests_per_million,
        "cloud_logging": over(month.log_bytes / GIB, prices.logging_free_gib)
        * prices.logging_per_gib,
    }
    bill["total"] = sum(bill.values())
    return {line: round(value, 4) for line, value in bill.items()}


def monthly_table(
    designs: Mapping[str, Usage],
    prices: Prices,
    volumes: Sequence[int] = MONTHLY_EVENTS,
    ours: str = "stitch",
    baseline: str = "baseline",
) -> list[dict[str, Any]]:
    """One row per monthly volume: each design's bill, list and after free tiers, and
    ``ours`` over ``baseline``."""
    rows = []
    for events in volumes:
        row: dict[str, Any] = {"events_per_month": events}
        for free_tier in (False, True):
            key = "free_tier" if free_tier else "list"
            bills = {
                name: monthly_bill(usage, events, prices, free_tier=free_tier)
                for name, usage in designs.items()
            }
            base = bills[baseline]["total"]
            row[key] = {
                **bills,
                "ratio": round(bills[ours]["total"] / base, 3) if base else None,
            }
        rows.append(row)
    return rows
