"""The forward function through functions-framework, the emulators and the local GA4 endpoint."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from google.cloud import firestore, pubsub_v1

from benchmarks.rpc_counter import RpcCounter, counting_client
from ga4_stitch.ga4_endpoint import LocalGa4
from shared.adapters.firestore.ledger import FirestoreForwardLedger, ledger_key
from tests.cloudevents import pubsub_cloud_event
from tests.conftest import PROJECT

pytestmark = pytest.mark.integration

MAIN = os.path.join(os.path.dirname(__file__), "..", "..", "functions", "main.py")
MEASUREMENT_ID = "G-INTEGRATION"
SECRET = "integration-secret"


@pytest.fixture
def ga4(clean_firestore: str, unique: str, tmp_path: Path) -> Iterator[LocalGa4]:
    """A local GA4 endpoint and the forward function's environment pointing at it."""
    with LocalGa4(tmp_path / "ga4.ndjson") as server:
        os.environ.update(
            {
                "GA4_ENDPOINT": server.url,
                "GA4_MEASUREMENT_ID": MEASUREMENT_ID,
                "GA4_API_SECRET": SECRET,
                "GA4_TIMEOUT_SECONDS": "0.5",
                "GA4_RETRY_ATTEMPTS": "3",
                "GA4_RETRY_BUDGET_SECONDS": "5",
                "COLLECTION_PREFIX": f"t{unique}_",
            }
        )
        yield server


@pytest.fixture
def dead_letters(ga4: LocalGa4, unique: str) -> Callable[[int], list[dict[str, Any]]]:
    """A fresh forward dead-letter topic; the returned function pulls what reached it."""
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(PROJECT, f"forward-dead-{unique}")
    subscription = subscriber.subscription_path(PROJECT, f"forward-dead-{unique}-pull")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(request={"name": subscription, "topic": topic})
    os.environ["FORWARD_DEAD_LETTER_TOPIC"] = f"forward-dead-{unique}"

    def pull(expected: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(received) < expected and time.monotonic() < deadline:
            response = subscriber.pull(
                request={"subscription": subscription, "max_messages": 10}, timeout=5
            )
            received.extend(
                {**json.loads(item.message.data), "attributes": dict(item.message.attributes)}
                for item in response.received_messages
            )
            if response.received_messages:
                subscriber.acknowledge(
                    request={
                        "subscription": subscription,
                        "ack_ids": [m.ack_id for m in response.received_messages],
                    }
                )
        return received

    return pull


def forwarded() -> str:
    """The ledger collection the forward function writes in this test."""
    return f"{os.environ['COLLECTION_PREFIX']}forwarded"


def new_instance() -> Any:
    """A fresh function instance: main.py loaded anew, so settings and clients are rebuilt."""
    return functions_framework.create_app("forward", MAIN, "http").test_client()


def deliver(app: Any, payload: dict[str, Any] | bytes, message_id: str) -> int:
    """POST one structured-mode Pub/Sub CloudEvent; the HTTP status Pub/Sub would see."""
    event = pubsub_cloud_event(
        payload,
        message_id,
        topic="ga4-stitch-enriched-events",
        subscription="forward-push",
        publish_time="2025-11-22T08:29:14.000Z",
        attributes={"client_id": "1768696203.1712345678", "event_name": "page_view"},
    )
    response = app.post("/", json=event, headers={"Content-Type": "application/cloudevents+json"})
    return int(response.status_code)


def enriched(event_id: str, **resolved: Any) -> dict[str, Any]:
    now = time.time_ns() // 1_000
    return {
        "client_id": "GA1.1.1768696203.1712345678",
        "event_name": "page_view",
        "page_location": "https://shop.example/product/1",
        "page_title": "Product 1",
        "x-ga-gcs": "G111",
        "resolved": {
            "event_id": event_id,
            "event_name": "page_view",
            "timestamp_micros": now - 5_000_000,
            "client_id": "1768696203.1712345678",
            "user_id": "cust-000981",
            "session_id": now // 1_000_000 - 60,
            "session_number": 4,
            "consent": {"ad_user_data": "granted", "ad_personalization": "denied"},
            **resolved,
        },
    }


def test_an_enriched_event_reaches_ga4_once_with_the_resolved_ids(ga4: LocalGa4) -> None:
    """One valid request, canonical client id, user id, integer session id."""
    assert deliver(new_instance(), enriched("e-1"), "m-1") == 200
    (request,) = ga4.accepted()
    assert request["measurement_id"] == MEASUREMENT_ID
    assert request["validation_messages"] == []
    body = request["body"]
    assert body["client_id"] == "1768696203.1712345678"
    assert body["user_id"] == "cust-000981"
    assert body["consent"] == {"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}
    assert isinstance(body["events"][0]["params"]["session_id"], int)


def test_a_pubsub_push_body_is_forwarded_like_a_cloud_event(ga4: LocalGa4) -> None:
    """A push subscription posts plain JSON; functions-framework makes it the same event."""
    raw = base64.b64encode(json.dumps(enriched("e-push")).encode()).decode()
    push = {
        "message": {"data": raw, "messageId": "m-push", "publishTime": "2025-11-22T08:29:14Z"},
        "subscription": f"projects/{PROJECT}/subscriptions/forward-push",
    }
    response = new_instance().post("/", json=push)
    assert response.status_code == 200
    assert len(ga4.accepted()) == 1


def test_a_redelivery_to_any_instance_sends_nothing_more(ga4: LocalGa4) -> None:
    """The ledger is shared: the same event_id is acknowledged without a second request."""
    assert deliver(new_instance(), enriched("e-1"), "m-1") == 200
    assert deliver(new_instance(), enriched("e-1"), "m-1") == 200
    assert deliver(new_instance(), enriched("e-1"), "m-2") == 200
    assert len(ga4.requests()) == 1
    (entry,) = firestore.Client(project=PROJECT).collection(forwarded()).stream()
    assert (entry.get("state"), entry.get("expire_at") is not None) == ("sent", True)


def test_without_a_ledger_every_redelivery_is_sent_again(ga4: LocalGa4) -> None:
    """FORWARD_LEDGER=none: at least once, nothing written to Firestore."""
    os.environ["FORWARD_LEDGER"] = "none"
    try:
        instance = new_instance()
        assert deliver(instance, enriched("e-1"), "m-1") == 200
        assert deliver(instance, enriched("e-1"), "m-2") == 200
    finally:
        del os.environ["FORWARD_LEDGER"]
    assert len(ga4.accepted()) == 2
    assert list(firestore.Client(project=PROJECT).collection(forwarded()).stream()) == []


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (500, None), (429, 0.2)])
def test_a_5xx_or_429_is_retried_within_the_delivery(
    ga4: LocalGa4, status: int, retry_after: float | None
) -> None:
    """One failure, one retry, one accepted request, and the message is acknowledged."""
    ga4.fail_next(1, status=status, retry_after=retry_after)
    assert deliver(new_instance(), enriched("e-1"), "m-1") == 200
    assert [r["status"] for r in ga4.requests()] == [status, 204]
    assert len(ga4.accepted()) == 1


def wait_for_requests(ga4: LocalGa4, expected: int, timeout: float = 10.0) -> None:
    """Late answers are recorded when they are sent: wait for them, then a grace period
    that would catch any stray resend."""
    deadline = time.monotonic() + timeout
    while len(ga4.requests()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)


def test_a_late_answer_is_assumed_taken_and_never_sent_again(ga4: LocalGa4) -> None:
    """GA4 took the request but answered after the timeout: acknowledged (200) at once,
    ledger uncertain, and redeliveries to any instance send nothing more."""
    ga4.delay_next(1, seconds=3.0)
    instance = new_instance()
    started = time.monotonic()
    assert deliver(instance, enriched("e-1"), "m-1") == 200
    assert time.monotonic() - started < 3.0
    assert deliver(new_instance(), enriched("e-1"), "m-1") == 200
    assert deliver(new_instance(), enriched("e-1"), "m-2") == 200
    wait_for_requests(ga4, 1)
    assert [r["event_id"] for r in ga4.requests()] == ["e-1"]
    entry = next(iter(firestore.Client(project=PROJECT).collection(forwarded()).stream()))
    assert entry.get("state") == "uncertain"
    assert entry.get("expire_at") is not None


@pytest.mark.parametrize("events", [10, 40])
def test_a_ga4_that_always_answers_late_gets_each_event_exactly_once(
    ga4: LocalGa4, events: int
) -> None:
    """Every request answered after the client's timeout, each event delivered three times
    (Pub/Sub is at least once): GA4 receives each event once, no duplicate, no loss.

    Before, each delivery made 4 attempts (read timeouts retried) and released its claim,
    so Pub/Sub redelivered: ``events`` deliveries cost ``4 * events`` requests, each a
    duplicate of the first. Now: ``events`` requests for ``3 * events`` deliveries."""
    os.environ["GA4_TIMEOUT_SECONDS"] = "0.2"
    ga4.delay_next(events, seconds=0.5)
    instance = new_instance()
    ids = [f"late-{index}" for index in range(events)]
    statuses = [deliver(instance, enriched(event_id), f"m-{event_id}") for event_id in ids]
    for attempt in (2, 3):
        statuses += [
            deliver(new_instance() if attempt == 3 else instance, enriched(i), f"m-{i}-{attempt}")
            for i in ids
        ]
    assert statuses == [200] * (3 * events)
    wait_for_requests(ga4, events)
    received = Counter(r["event_id"] for r in ga4.requests())
    assert received == Counter(ids)
    assert len(ga4.accepted()) == events


def test_5xx_forever_answers_500_and_a_later_redelivery_sends_exactly_once(
    ga4: LocalGa4,
) -> None:
    """Retries are bounded; nothing was recorded, so the redelivery sends at once."""
    ga4.fail_next(3, status=503)
    assert deliver(new_instance(), enriched("e-1"), "m-1") == 500
    assert ga4.accepted() == []
    assert deliver(new_instance(), enriched("e-1"), "m-1") == 200
    assert deliver(new_instance(), enriched("e-1"), "m-1") == 200
    assert len(ga4.accepted()) == 1
    assert len(ga4.requests()) == 4


def test_a_message_that_is_not_json_is_dead_lettered_with_its_reason(
    ga4: LocalGa4, dead_letters: Callable[[int], list[dict[str, Any]]]
) -> None:
    """Acknowledged (200), never sent, and the dead letter says not_json."""
    assert deliver(new_instance(), b"{broken", "m-9") == 200
    (letter,) = dead_letters(1)
    assert letter["reason"] == "not_json"
    assert letter["attributes"]["reason"] == "not_json"
    assert letter["attributes"]["source"] == "forward"
    assert letter["payload"] == "{broken"
    assert ga4.requests() == []


def test_an_event_ga4_would_drop_is_dead_lettered_with_the_validation_messages(
    ga4: LocalGa4, dead_letters: Callable[[int], list[dict[str, Any]]]
) -> None:
    """A reserved event name: ga4_invalid, detail = GA4-shaped messages."""
    assert deliver(new_instance(), enriched("e-1", event_name="session_start"), "m-1") == 200
    (letter,) = dead_letters(1)
    assert letter["reason"] == "ga4_invalid"
    assert json.loads(letter["detail"])[0]["validationCode"] == "NAME_RESERVED"
    assert ga4.requests() == []


def test_an_event_older_than_72_hours_is_dead_lettered(
    ga4: LocalGa4, dead_letters: Callable[[int], list[dict[str, Any]]]
) -> None:
    """GA4 would clamp it: too_old_for_ga4."""
    old = time.time_ns() // 1_000 - 73 * 3_600_000_000
    assert deliver(new_instance(), enriched("e-1", timestamp_micros=old), "m-1") == 200
    assert [letter["reason"] for letter in dead_letters(1)] == ["too_old_for_ga4"]
    assert ga4.requests() == []


# The ledger against the real Firestore emulator, its RPCs counted where they leave the
# process (a gRPC interceptor on the client's channel)


@pytest.fixture
def ledger(clean_firestore: str, unique: str) -> tuple[FirestoreForwardLedger, RpcCounter]:
    counter = RpcCounter()
    return FirestoreForwardLedger(counting_client(PROJECT, counter), forwarded_in(unique)), counter


def forwarded_in(unique: str) -> str:
    return f"forwarded_{unique}"


def entry(unique: str, event_id: str) -> Any:
    collection = firestore.Client(project=PROJECT).collection(forwarded_in(unique))
    return collection.document(ledger_key(MEASUREMENT_ID, event_id))


NOW = time.time_ns() // 1_000


def test_the_common_case_costs_one_read_and_one_write(
    ledger: tuple[FirestoreForwardLedger, RpcCounter], unique: str
) -> None:
    """delivered (read, nothing there) + record (create): 2 RPCs, 1 of them a write."""
    store, counter = ledger
    assert store.delivered(MEASUREMENT_ID, "e-1") is None
    assert store.record(MEASUREMENT_ID, "e-1", "sent", NOW) is True
    assert counter.calls() == Counter({"GetDocument": 1, "Commit": 1})
    assert counter.documents() == Counter({"read": 1, "write": 1})
    document = entry(unique, "e-1").get()
    assert document.get("state") == "sent"
    assert document.get("expire_at").timestamp() == pytest.approx(NOW / 1e6 + 8 * 86_400)


def test_a_redelivery_to_the_sending_instance_costs_no_rpc(
    ledger: tuple[FirestoreForwardLedger, RpcCounter],
) -> None:
    """The instance's cache knows the event was sent."""
    store, counter = ledger
    store.record(MEASUREMENT_ID, "e-1", "sent", NOW)
    counter.reset()
    assert store.delivered(MEASUREMENT_ID, "e-1") == "sent"
    assert counter.total() == 0


def test_a_redelivery_to_another_instance_costs_one_read(clean_firestore: str, unique: str) -> None:
    """Another instance reads the entry once, then knows it too."""
    collection = forwarded_in(unique)
    FirestoreForwardLedger(firestore.Client(project=PROJECT), collection).record(
        MEASUREMENT_ID, "e-1", "uncertain", NOW
    )
    counter = RpcCounter()
    other = FirestoreForwardLedger(counting_client(PROJECT, counter), collection)
    assert other.delivered(MEASUREMENT_ID, "e-1") == "uncertain"
    assert other.delivered(MEASUREMENT_ID, "e-1") == "uncertain"
    assert counter.calls() == Counter({"GetDocument": 1})


def test_a_second_record_is_refused_and_leaves_the_entry_alone(
    clean_firestore: str, unique: str
) -> None:
    """create with exists=False: a concurrent copy's write fails (False, for the caller's
    ``duplicate_risk``) and the first entry, its state and ``expire_at`` stay."""
    collection = forwarded_in(unique)
    first = FirestoreForwardLedger(firestore.Client(project=PROJECT), collection)
    second = FirestoreForwardLedger(firestore.Client(project=PROJECT), collection)
    assert second.delivered(MEASUREMENT_ID, "e-1") is None
    assert first.record(MEASUREMENT_ID, "e-1", "uncertain", NOW) is True
    assert second.record(MEASUREMENT_ID, "e-1", "sent", NOW + 1_000_000) is False
    document = entry(unique, "e-1").get()
    assert document.get("state") == "uncertain"
    assert document.get("expire_at").timestamp() == pytest.approx(NOW / 1e6 + 8 * 86_400)


def test_an_entry_in_an_unknown_state_is_not_taken_for_delivered(
    ledger: tuple[FirestoreForwardLedger, RpcCounter], unique: str
) -> None:
    """A ``sending`` claim left by the protocol before this one does not block the event."""
    store, _ = ledger
    entry(unique, "e-old").set({"state": "sending", "event_id": "e-old"})
    assert store.delivered(MEASUREMENT_ID, "e-old") is None


def test_the_cache_is_bounded(clean_firestore: str, unique: str) -> None:
    store = FirestoreForwardLedger(
        firestore.Client(project=PROJECT), forwarded_in(unique), cache_size=3
    )
    for index in range(5):
        store.record(MEASUREMENT_ID, f"e-{index}", "sent", NOW)
    assert store.cached == 3


def test_only_sent_or_uncertain_is_recorded(
    ledger: tuple[FirestoreForwardLedger, RpcCounter],
) -> None:
    store, _ = ledger
    with pytest.raises(ValueError, match="sent or uncertain"):
        store.record(MEASUREMENT_ID, "e-1", "sending", NOW)


def test_concurrent_records_each_commit_alone_with_their_own_outcomes(
    clean_firestore: str, unique: str
) -> None:
    """Deliveries recording at the same time each commit their own entry at once (no
    waiting in a group after GA4 took the event); a copy of an event already recorded is
    refused alone, and counted as a failed write."""
    FirestoreForwardLedger(firestore.Client(project=PROJECT), forwarded_in(unique)).record(
        MEASUREMENT_ID, "e-dup", "sent", NOW
    )
    counter = RpcCounter()
    store = FirestoreForwardLedger(counting_client(PROJECT, counter), forwarded_in(unique))
    events = [f"e-{n}" for n in range(30)] + ["e-dup", "e-dup"]
    start = threading.Barrier(len(events))

    def record(event_id: str) -> bool:
        start.wait()
        return store.record(MEASUREMENT_ID, event_id, "sent", NOW)

    with ThreadPoolExecutor(len(events)) as pool:
        created = list(pool.map(record, events))
    assert created == [True] * 30 + [False, False]
    assert counter.calls() == Counter({"Commit": len(events)})
    assert counter.documents() == Counter({"write": 30, "write_failed": 2})
    assert counter.failures() == Counter({"Commit:ALREADY_EXISTS": 2})
    stored = firestore.Client(project=PROJECT).collection(forwarded_in(unique)).stream()
    assert len(list(stored)) == 31


def test_concurrent_lookups_share_a_read_and_each_get_their_own_answer(
    clean_firestore: str, unique: str
) -> None:
    """Deliveries looking up the ledger at the same time are read together
    (``BatchGetDocuments``), each answered as a read of its own would be: sent, uncertain,
    not there, or not delivered (an unknown state); every lookup is still one billed read."""
    writer = FirestoreForwardLedger(firestore.Client(project=PROJECT), forwarded_in(unique))
    for n in range(0, 30, 3):
        writer.record(MEASUREMENT_ID, f"e-{n}", "sent", NOW)
    for n in range(1, 30, 3):
        writer.record(MEASUREMENT_ID, f"e-{n}", "uncertain", NOW)
    entry(unique, "e-2").set({"state": "sending"})
    expected = {f"e-{n}": ("sent", "uncertain", None)[n % 3] for n in range(30)}
    counter = RpcCounter()
    store = FirestoreForwardLedger(counting_client(PROJECT, counter), forwarded_in(unique))
    start = threading.Barrier(len(expected))

    def lookup(event_id: str) -> str | None:
        start.wait()
        return store.delivered(MEASUREMENT_ID, event_id)

    with ThreadPoolExecutor(len(expected)) as pool:
        found = dict(zip(expected, pool.map(lookup, expected), strict=True))
    assert found == expected
    assert counter.documents() == Counter({"read": 30})
    assert counter.calls()["BatchGetDocuments"] >= 1
    assert sum(counter.calls().values()) < 30
    assert store.cached == 20
