"""The benchmark harness on the Firestore emulator: RPCs counted right, both designs driven
in every delivery mode, errors attributed. Behaviour only, never timings."""

from __future__ import annotations

import pytest
from google.api_core.exceptions import AlreadyExists, FailedPrecondition
from google.cloud import firestore

from benchmarks.attribution import attribute
from benchmarks.common import BenchEnv, make_stream, run_design
from benchmarks.firestore_size import document_size
from benchmarks.rpc_counter import RpcCounter, counting_client
from ga4_stitch.score import score
from shared.adapters.firestore.documents import DocumentService
from shared.adapters.firestore.ledger import FirestoreForwardLedger
from shared.adapters.firestore.writes import create_write
from tests.conftest import PROJECT

pytestmark = pytest.mark.integration


@pytest.fixture
def counted(clean_firestore: str) -> tuple[RpcCounter, firestore.Client]:
    counter = RpcCounter()
    return counter, counting_client(PROJECT, counter)


def test_a_get_is_one_batch_get_and_a_write_one_commit(counted):
    """Counts come from the gRPC layer: set, get and a failed precondition write."""
    counter, client = counted
    reference = client.collection("smoke").document("a")
    reference.set({"x": 1})
    snapshot = reference.get()
    reference.update({"x": 2})
    stale = client.write_option(last_update_time=snapshot.update_time)
    with pytest.raises(FailedPrecondition):
        reference.update({"x": 3}, option=stale)
    assert counter.calls() == {"Commit": 3, "BatchGetDocuments": 1}
    assert counter.failures() == {"Commit:FAILED_PRECONDITION": 1}
    assert counter.mean_request_bytes("Commit") > 0


def test_the_ledgers_read_of_a_missing_entry_is_billed_as_one_read(counted):
    """A unary GetDocument answering NOT_FOUND is a read, not a failed one."""
    counter, client = counted
    ledger = FirestoreForwardLedger(client, "smoke_ledger")
    assert ledger.delivered("G-TEST", "e-1") is None
    assert ledger.record("G-TEST", "e-1", "sent", 1_000_000) is True
    assert counter.calls() == {"GetDocument": 1, "Commit": 1}
    assert counter.documents() == {"read": 1, "write": 1}


def test_a_write_a_batch_write_refuses_is_counted_as_a_failed_write(counted):
    """``BatchWrite`` answers per write: a second create refused inside an answered
    request is a failure, and its document is kept apart as a failed write."""
    counter, client = counted
    documents = DocumentService(client)
    write = create_write(documents.path("smoke_refused", "e-1"), {"state": "sent"})
    documents.write(write)
    with pytest.raises(AlreadyExists):
        documents.write(write)
    assert counter.calls() == {"BatchWrite": 2}
    assert counter.failures() == {"BatchWrite:ALREADY_EXISTS": 1}
    assert counter.documents() == {"write": 1, "write_failed": 1}
    assert counter.bytes_per_write() > 0


def test_a_transaction_costs_begin_read_and_commit(counted):
    """A read-write transaction is three RPCs, as the design's cost floor says."""
    counter, client = counted
    reference = client.collection("smoke").document("t")

    @firestore.transactional
    def bump(transaction):
        reference.get(transaction=transaction)
        transaction.set(reference, {"x": 1})

    bump(client.transaction())
    assert counter.calls() == {"BeginTransaction": 1, "BatchGetDocuments": 1, "Commit": 1}


def test_both_designs_resolve_a_small_stream_with_concurrent_workers(clean_firestore):
    """Every delivery gets an answer; ga4-stitch loses nothing and sends no duplicate
    (cross-domain hops and redeliveries are in the stream), and each of its errors is one
    the processing order explains."""
    env = BenchEnv(clean_firestore)
    stream = make_stream(2, seed=6)
    payloads = {str(p.get("event_id")): p for p in stream.deliveries}
    for design in ("baseline", "stitch"):
        measured = run_design(env, stream, design, "ordered", workers=4)
        assert sum(measured.run.statuses.values()) == len(stream.deliveries)
        assert measured.counter.total() > 0
        if design == "stitch":
            result = score(stream.truth, measured.run.sent)
            assert (result.events_lost, result.duplicates_sent) == (0, 0)
            blame = attribute(stream.truth, payloads, measured.run.sent)
            assert blame["sessions_wrong_resolver"] == blame["user_errors_resolver"] == 0


def test_document_size_follows_firestore_rules():
    """Name segments and strings count their bytes + 1, numbers 8, plus 16 and 32."""
    assert document_size(["c", "d"], {"a": 1, "b": "xy"}) == (2 + 2 + 16) + (2 + 8 + 2 + 3) + 32
