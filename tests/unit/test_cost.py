"""The cost model's arithmetic on small fixed inputs: documents counted from requests,
Pub/Sub bytes with the per-request minimum, compute from CPU and sizing, Cloud Logging
entries and the lines the functions write, the monthly bill."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from google.cloud.firestore_v1.types import (
    BatchGetDocumentsRequest,
    BeginTransactionRequest,
    CommitRequest,
    Document,
    GetDocumentRequest,
    Write,
)

from benchmarks import cost
from benchmarks.cost_bench import LogCounter, counting_logs
from benchmarks.rpc_counter import request_documents
from shared.logs import CloudLoggingFormatter, get_logger


@pytest.fixture
def prices() -> cost.Prices:
    """Round numbers, so every expected figure below is worked out by hand."""
    return cost.Prices(
        firestore_read_per_100k=0.06,
        firestore_write_per_100k=0.18,
        firestore_delete_per_100k=0.02,
        firestore_stored_gib_month=0.18,
        firestore_free_per_day={"read": 50_000, "write": 20_000, "delete": 20_000},
        firestore_free_stored_gib=1,
        pubsub_per_tib=40.0,
        pubsub_free_gib=10,
        pubsub_minimum_bytes=1000,
        pubsub_timestamp_bytes=20,
        pubsub_message_id_bytes=17,
        pubsub_ordering_key_billed=True,
        bigquery_subscription_per_tib=50.0,
        run_vcpu_second=0.000024,
        run_gib_second=0.0000025,
        run_requests_per_million=0.40,
        run_free={"vcpu_seconds": 180_000, "gib_seconds": 360_000, "requests": 2_000_000},
        run_cpu_target=0.6,
        logging_per_gib=0.50,
        logging_free_gib=50,
        logging_entry_overhead_bytes=700,
        logging_request_entry_bytes=1000,
    )


def zero_usage(**figures: float) -> cost.Usage:
    base = dict.fromkeys(
        (
            "firestore_reads",
            "firestore_writes",
            "firestore_deletes",
            "stored_bytes",
            "pubsub_bytes",
            "function_requests",
            "vcpu_seconds",
            "gib_seconds",
            "log_bytes",
        ),
        0.0,
    )
    return cost.Usage(**{**base, **figures})


# ----------------------------------------------------------------------- documents


def test_a_commit_bills_one_write_per_document_and_deletes_apart() -> None:
    request = CommitRequest(
        writes=[
            Write(update=Document(name="projects/p/databases/(default)/documents/c/a")),
            Write(update=Document(name="projects/p/databases/(default)/documents/c/b")),
            Write(update=Document(name="projects/p/databases/(default)/documents/u/x")),
            Write(delete="projects/p/databases/(default)/documents/c/old"),
        ]
    )
    assert request_documents("Commit", request) == {"write": 3, "delete": 1}


def test_a_batch_get_bills_every_document_it_names_found_or_not() -> None:
    request = BatchGetDocumentsRequest(documents=["d/c/a", "d/c/missing"])
    assert request_documents("BatchGetDocuments", request) == {"read": 2}


def test_a_single_get_bills_its_one_document() -> None:
    """The ledger's unary read is one read, like one name of a batch get."""
    request = GetDocumentRequest(name="d/c/missing")
    assert request_documents("GetDocument", request) == {"read": 1}


def test_methods_that_touch_no_document_bill_nothing() -> None:
    assert request_documents("BeginTransaction", BeginTransactionRequest()) == {}


def test_failed_commit_writes_are_billed_only_when_asked() -> None:
    counts = {"read": 5, "write": 10, "write_failed": 2, "delete_failed": 1}
    assert cost.billed_documents(counts, failed_billed=True) == {
        "read": 5,
        "write": 12,
        "delete": 1,
    }
    assert cost.billed_documents(counts, failed_billed=False) == {
        "read": 5,
        "write": 10,
        "delete": 0,
    }


# ------------------------------------------------------------------------- Pub/Sub


def test_a_message_bills_data_attributes_timestamp_id_and_ordering_key(prices) -> None:
    size = cost.message_bytes(b"x" * 100, {"ab": "cde", "f": ""}, "key1", prices)
    assert size == 100 + (2 + 3) + (1 + 0) + 20 + 17 + 4
    without_key = replace(prices, pubsub_ordering_key_billed=False)
    assert cost.message_bytes(b"x" * 100, {}, "key1", without_key) == 137


def test_a_small_request_is_billed_the_minimum_a_large_one_its_size(prices) -> None:
    assert cost.request_bytes([300], prices) == 1000
    assert cost.request_bytes([300, 400], prices) == 1000
    assert cost.request_bytes([600, 500], prices) == 1100
    assert cost.request_bytes([1000], prices) == 1000


# ----------------------------------------------------------------------- Cloud Run


def test_memory_sizes_are_read_in_gib() -> None:
    assert cost.parse_memory_gib("512Mi") == 0.5
    assert cost.parse_memory_gib("2Gi") == 2.0
    with pytest.raises(ValueError, match="512Mi"):
        cost.parse_memory_gib("512MB")


def test_the_terraform_defaults_are_read_from_the_variable_block(tmp_path: Path) -> None:
    variables = tmp_path / "variables.tf"
    variables.write_text(
        'variable "forward_function" {\n  type = object({\n'
        '    memory = optional(string, "1Gi")\n    cpu = optional(string, "2")\n'
        "    concurrency = optional(number, 40)\n  })\n  validation {\n  }\n}\n"
    )
    sizing = cost.terraform_sizing("forward_function", variables)
    assert sizing == cost.Sizing(vcpu=2.0, memory_gib=1.0, concurrency=40)
    with pytest.raises(ValueError, match="resolve_function"):
        cost.terraform_sizing("resolve_function", variables)


def test_instance_time_is_cpu_time_over_the_utilization_target() -> None:
    sizing = cost.Sizing(vcpu=1.0, memory_gib=0.5, concurrency=80)
    compute = cost.compute_per_event(2.0, 3.0, sizing, 0.6)
    # 2 requests x 3 ms = 6 ms of CPU; at 60% of 1 vCPU the instance is billed 10 ms.
    assert compute.requests == 2.0
    assert compute.vcpu_seconds == pytest.approx(0.010)
    assert compute.gib_seconds == pytest.approx(0.005)


def test_sparse_requests_are_each_billed_at_least_100_ms() -> None:
    sizing = cost.Sizing(vcpu=2.0, memory_gib=1.0, concurrency=80)
    assert cost.isolated_ceiling(1.0, 12.0, sizing).vcpu_seconds == pytest.approx(0.2)
    assert cost.isolated_ceiling(1.0, 150.0, sizing).gib_seconds == pytest.approx(0.2)


def test_events_per_second_per_instance_follows_cpu_per_event() -> None:
    assert cost.events_per_second_per_instance(4.0) == 250.0
    assert cost.events_per_second_per_instance(4.0, vcpu=2.0) == 500.0


# -------------------------------------------------------------------- Cloud Logging


def test_terraform_scalar_defaults_are_read_unquoted(tmp_path: Path) -> None:
    variables = tmp_path / "variables.tf"
    variables.write_text(
        'variable "log_level" {\n  type    = string\n  default = "WARNING"\n'
        "  validation {\n    condition = true\n  }\n}\n\n"
        'variable "exclude_pipeline_request_logs" {\n  type    = bool\n  default = true\n}\n'
    )
    assert cost.terraform_default("log_level", variables) == "WARNING"
    assert cost.terraform_default("exclude_pipeline_request_logs", variables) == "true"
    with pytest.raises(ValueError, match="region"):
        cost.terraform_default("region", variables)


def test_an_entry_bills_its_line_and_the_entrys_own_fields(prices) -> None:
    assert cost.entry_bytes(cost.LogLines(lines=2.0, bytes=500.0), prices) == 500 + 2 * 700


def test_request_entries_follow_function_requests_redeliveries_included(prices) -> None:
    """One request entry per HTTP request, whether or not the function logs anything."""
    functions = {
        "resolve": cost.FunctionLogs(requests=1.25, acknowledged=1.0),
        "forward": cost.FunctionLogs(requests=0.99, acknowledged=0.99),
    }
    billed = cost.billed_log_bytes(functions, prices)
    assert billed.application == 0.0
    assert billed.requests == pytest.approx((1.25 + 0.99) * 1000)
    doubled = {name: replace(logs, requests=2 * logs.requests) for name, logs in functions.items()}
    assert cost.billed_log_bytes(doubled, prices).requests == pytest.approx(2 * billed.requests)


def _lines() -> dict[str, cost.LogLines]:
    return {
        "DEBUG": cost.LogLines(lines=3.0, bytes=600.0),
        "INFO": cost.LogLines(lines=1.0, bytes=300.0),
        "WARNING": cost.LogLines(lines=0.5, bytes=150.0),
        "ERROR": cost.LogLines(lines=0.25, bytes=100.0),
    }


def test_lines_below_log_level_are_not_billed(prices) -> None:
    functions = {"resolve": cost.FunctionLogs(requests=1.0, acknowledged=1.0, lines=_lines())}
    info = cost.billed_log_bytes(functions, prices, level="INFO")
    warning = cost.billed_log_bytes(functions, prices, level="WARNING")
    assert info.application == pytest.approx(300 + 700 + 150 + 350 + 100 + 175)
    assert warning.application == pytest.approx(150 + 350 + 100 + 175)
    assert warning.requests == info.requests == 1000
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        cost.billed_log_bytes(functions, prices, level="NOTICE")


def test_the_exclusion_drops_acknowledged_request_entries_and_nothing_else(prices) -> None:
    """Application entries stay whole, and so do the entries of failed requests."""
    functions = {
        "resolve": cost.FunctionLogs(requests=1.25, acknowledged=1.0, lines=_lines()),
        "forward": cost.FunctionLogs(requests=1.0, acknowledged=1.0),
    }
    kept = cost.billed_log_bytes(functions, prices)
    excluded = cost.billed_log_bytes(functions, prices, exclude_acknowledged_requests=True)
    assert excluded.application == kept.application > 0
    assert excluded.requests == pytest.approx(0.25 * 1000)
    nothing_acknowledged = {"resolve": cost.FunctionLogs(requests=3.0, acknowledged=0.0)}
    assert cost.billed_log_bytes(
        nothing_acknowledged, prices, exclude_acknowledged_requests=True
    ) == cost.billed_log_bytes(nothing_acknowledged, prices)


def test_log_gib_are_billed_after_the_free_allotment_per_gib(prices) -> None:
    usage = zero_usage(log_bytes=60 * 2**30 / 1_000_000)
    listed = cost.monthly_bill(usage, 1_000_000, prices, free_tier=False)
    free = cost.monthly_bill(usage, 1_000_000, prices, free_tier=True)
    assert listed["cloud_logging"] == pytest.approx(60 * 0.50)
    assert free["cloud_logging"] == pytest.approx((60 - 50) * 0.50)
    assert listed["total"] == listed["cloud_logging"]
    under = zero_usage(log_bytes=49 * 2**30 / 1_000_000)
    assert cost.monthly_bill(under, 1_000_000, prices, free_tier=True)["cloud_logging"] == 0.0


def test_the_log_counter_counts_what_the_functions_write_to_stdout() -> None:
    """Lines and bytes by severity equal those of the functions' own stdout handler (newline
    left out), and lines below the level are not written at all."""
    stdout = io.StringIO()
    written = logging.StreamHandler(stdout)
    written.setFormatter(CloudLoggingFormatter())
    log = get_logger("cost_test")
    with counting_logs(LogCounter(), "INFO") as counter:
        logging.getLogger("ga4_stitch").addHandler(written)
        try:
            log.debug("not written", extra={"event": "noise"})
            log.info("resolved", extra={"event": "resolved", "client_id": "1.2", "late": False})
            log.info("café %s", "ü", extra={"event": "forwarded", "measurement_id": "G-X"})
            log.warning("dead-lettered", extra={"event": "dead_lettered", "reason": "bad"})
        finally:
            logging.getLogger("ga4_stitch").removeHandler(written)
    lines = stdout.getvalue().splitlines()
    by_severity: dict[str, list[str]] = {}
    for line in lines:
        by_severity.setdefault(line.split('"severity":"')[1].split('"')[0], []).append(line)
    assert dict(counter.lines) == {"INFO": 2, "WARNING": 1}
    assert dict(counter.bytes) == {
        severity: sum(len(line.encode()) for line in group)
        for severity, group in by_severity.items()
    }
    assert counter.per_event(2) == {
        "INFO": cost.LogLines(lines=1.0, bytes=counter.bytes["INFO"] / 2),
        "WARNING": cost.LogLines(lines=0.5, bytes=counter.bytes["WARNING"] / 2),
    }


def test_counting_logs_leaves_the_logger_as_it_found_it() -> None:
    """Even when the block fails: the benchmark's other runs keep their quiet logger."""
    logger = logging.getLogger("ga4_stitch")
    before = (logger.level, list(logger.handlers))
    inside = None
    with contextlib.suppress(RuntimeError), counting_logs(LogCounter(), "WARNING") as counter:
        inside = (logger.level, counter in logger.handlers)
        raise RuntimeError("a delivery failed")
    assert inside == (logging.WARNING, True)
    assert (logger.level, list(logger.handlers)) == before


# --------------------------------------------------------------------- the bill


def test_the_list_bill_multiplies_usage_by_events_and_prices(prices) -> None:
    usage = zero_usage(
        firestore_reads=2.0,
        firestore_writes=1.0,
        pubsub_bytes=2**30 / 1_000_000,
        function_requests=1.0,
        vcpu_seconds=0.01,
        gib_seconds=0.005,
    )
    bill = cost.monthly_bill(usage, 1_000_000, prices, free_tier=False)
    assert bill["firestore_reads"] == pytest.approx(20 * 0.06)
    assert bill["firestore_writes"] == pytest.approx(10 * 0.18)
    assert bill["pubsub_throughput"] == pytest.approx(40.0 / 1024, abs=1e-4)
    assert bill["run_vcpu"] == pytest.approx(10_000 * 0.000024)
    assert bill["run_memory"] == pytest.approx(5_000 * 0.0000025)
    assert bill["run_requests"] == pytest.approx(0.40)
    lines = [value for line, value in bill.items() if line != "total"]
    assert bill["total"] == pytest.approx(sum(lines), abs=1e-3)


def test_free_tiers_are_subtracted_and_never_go_below_zero(prices) -> None:
    usage = zero_usage(firestore_reads=1.0, firestore_writes=1.0, function_requests=1.0)
    bill = cost.monthly_bill(usage, 1_000_000, prices, free_tier=True)
    # 30 days x 50,000 free reads cover the million; 30 x 20,000 writes leave 400,000.
    assert bill["firestore_reads"] == 0.0
    assert bill["firestore_writes"] == pytest.approx(4 * 0.18)
    assert bill["run_requests"] == 0.0


def test_the_table_has_every_volume_and_the_ratio_of_the_designs(prices) -> None:
    ours = zero_usage(firestore_writes=3.0)
    theirs = zero_usage(firestore_writes=1.0, firestore_reads=3.0)
    table = cost.monthly_table({"stitch": ours, "baseline": theirs}, prices, volumes=(10**8,))
    (row,) = table
    listed = row["list"]
    assert row["events_per_month"] == 10**8
    assert listed["stitch"]["total"] == pytest.approx(3000 * 0.18)
    assert listed["baseline"]["total"] == pytest.approx(1000 * 0.18 + 3000 * 0.06)
    assert listed["ratio"] == pytest.approx(540 / 360, abs=1e-3)
    assert row["free_tier"]["stitch"]["total"] < listed["stitch"]["total"]
