"""``ga4-stitch redrive`` on the Pub/Sub emulator, with both functions in the loop.

Dead letters are made by the resolve function itself (events refused as too late under a
too strict ``ALLOWED_LATENESS_HOURS``) or published as the functions and Pub/Sub write
them; after the cause is fixed, ``redrive`` (run twice, plus a dead letter that arrived
twice) puts them back, the messages on the topics are delivered to the functions the way a
push subscription would, and every event reaches GA4 exactly once.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from google.cloud import pubsub_v1

from ga4_stitch import cli
from ga4_stitch.ga4_endpoint import LocalGa4
from ga4_stitch.pipeline import PipelineInfo
from shared.domain.messages import PubSubMessage, dead_letter_message
from shared.errors import PermanentError
from tests.cloudevents import pubsub_cloud_event
from tests.conftest import PROJECT
from tests.integration.pubsub_helpers import create_topic_with_subscription

pytestmark = pytest.mark.integration

MAIN = os.path.join(os.path.dirname(__file__), "..", "..", "functions", "main.py")
MEASUREMENT_ID = "G-REDRIVE01"
TOPICS = {
    "RAW_EVENTS_TOPIC": "raw",
    "ENRICHED_TOPIC": "enriched",
    "IDENTITY_LINKS_TOPIC": "links",
    "RESOLVE_DEAD_LETTER_TOPIC": "raw-dead",
    "FORWARD_DEAD_LETTER_TOPIC": "enriched-dead",
}
BOOKKEEPING = {"reason", "source", "message_id"}
SKIPPED_BAD = "skipped 1 (bad_enriched_event 1)"
SKIPPED_BAD_RAW = "skipped 1 (missing_client_id 1)"


@pytest.fixture
def pipeline(
    clean_firestore: str, unique: str, tmp_path: Path
) -> Iterator[tuple[dict[str, str], LocalGa4]]:
    """The five topics, each with a pull subscription (by variable), named in the
    environment as the functions and ``redrive`` read them, and a local GA4."""
    names = {variable: f"{name}-{unique}" for variable, name in TOPICS.items()}
    os.environ.update(names)
    subscriptions = {
        variable: create_topic_with_subscription(PROJECT, topic)
        for variable, topic in names.items()
    }
    with LocalGa4(tmp_path / "ga4.ndjson") as ga4:
        os.environ.update(
            {
                "GA4_ENDPOINT": ga4.url,
                "GA4_MEASUREMENT_ID": MEASUREMENT_ID,
                "GA4_API_SECRET": "redrive-secret",
                "COLLECTION_PREFIX": f"r{unique}_",
            }
        )
        yield subscriptions, ga4


def app(target: str) -> Any:
    """A fresh function instance, reading the environment as it is now."""
    return functions_framework.create_app(target, MAIN, "http").test_client()


def deliver(instance: Any, message: Any) -> None:
    """Post one pulled message as the push subscription's CloudEvent; it must succeed."""
    published = message.publish_time.isoformat().replace("+00:00", "Z")
    event = pubsub_cloud_event(
        bytes(message.data),
        message.message_id,
        topic="t",
        subscription="push",
        publish_time=published,
        attributes=dict(message.attributes),
    )
    response = instance.post(
        "/", json=event, headers={"Content-Type": "application/cloudevents+json"}
    )
    assert response.status_code == 200


def pump(subscription: str, instance: Any | None = None) -> list[Any]:
    """Every message waiting on ``subscription``, delivered to ``instance`` when given, then
    acknowledged (ordered subscriptions hand out a key's next message after the ack)."""
    subscriber = pubsub_v1.SubscriberClient()
    taken: list[Any] = []
    quiet = 0
    while quiet < 3:
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": 100, "return_immediately": True},
            timeout=5,
        )
        if not response.received_messages:
            quiet += 1
            time.sleep(0.1)
            continue
        quiet = 0
        for item in response.received_messages:
            if instance is not None:
                deliver(instance, item.message)
            taken.append(item.message)
        subscriber.acknowledge(
            request={
                "subscription": subscription,
                "ack_ids": [item.ack_id for item in response.received_messages],
            }
        )
    return taken


def redrive(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str]:
    """``ga4-stitch redrive ARGS`` against the emulator the environment names."""
    capsys.readouterr()  # the functions log to stdout: drop what they said so far
    code = cli.main(["redrive", *args, "--state-dir", str(tmp_path / "state")])
    return code, capsys.readouterr().out


def publish_dead_letter(variable: str, data: bytes, attributes: dict[str, str]) -> None:
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(PROJECT, os.environ[variable])
    publisher.publish(topic, data, **attributes).result(timeout=10)


def forward_envelope(body: dict[str, Any], reason: str, message_id: str) -> None:
    """A dead letter exactly as the forward function writes it, on its dead-letter topic."""
    resolved = body["resolved"]
    attributes = {
        "client_id": str(resolved.get("client_id", "")),
        "event_name": str(resolved.get("event_name", "")),
        "event_id": str(resolved["event_id"]),
        "stream_id": "",
        "session_id": str(resolved.get("session_id", "")),
    }
    original = PubSubMessage(json.dumps(body).encode(), message_id, None, attributes)
    letter = dead_letter_message(
        os.environ["FORWARD_DEAD_LETTER_TOPIC"],
        PermanentError(reason, "refused"),
        original,
        "forward",
        time.time_ns() // 1_000,
    )
    publish_dead_letter("FORWARD_DEAD_LETTER_TOPIC", letter.data, dict(letter.attributes))


def enriched(event_id: str, client_id: str) -> dict[str, Any]:
    now = time.time_ns() // 1_000
    return {
        "client_id": client_id,
        "event_name": "page_view",
        "page_location": "https://shop.example/",
        "resolved": {
            "event_id": event_id,
            "event_name": "page_view",
            "timestamp_micros": now - 60_000_000,
            "client_id": client_id,
            "user_id": None,
            "session_id": now // 1_000_000 - 120,
            "session_number": 1,
        },
    }


def sent_to_ga4(ga4: LocalGa4) -> Counter[str]:
    return Counter(str(request["event_id"]) for request in ga4.accepted())


def test_forward_dead_letters_reach_ga4_exactly_once_however_often_redriven(
    pipeline: tuple[dict[str, str], LocalGa4],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    subscriptions, ga4 = pipeline
    events = {f"e-{n}": enriched(f"e-{n}", f"10{n}.1763800000") for n in range(1, 5)}
    # e-4 reached GA4 before it was (wrongly) dead-lettered: its ledger says sent.
    publish_and_forward(app("forward"), events["e-4"], subscriptions["ENRICHED_TOPIC"])
    assert sent_to_ga4(ga4) == {"e-4": 1}
    forward_envelope(events["e-1"], "ga4_invalid", "m-1")
    forward_envelope(events["e-2"], "ga4_invalid", "m-2")
    forward_envelope(events["e-2"], "ga4_invalid", "m-2")  # dead-lettered twice
    forward_envelope(events["e-4"], "ga4_invalid", "m-4")
    forward_envelope({**events["e-1"], "resolved": {"event_id": "bad"}}, "bad_enriched_event", "m")
    e3 = events["e-3"]
    publish_dead_letter(  # Pub/Sub's own: the original message plus its bookkeeping
        "FORWARD_DEAD_LETTER_TOPIC",
        json.dumps(e3).encode(),
        {
            "client_id": e3["resolved"]["client_id"],
            "event_id": "e-3",
            "event_name": "page_view",
            "CloudPubSubDeadLetterSourceDeliveryCount": "10",
            "CloudPubSubDeadLetterSourceSubscription": "ga4-stitch-forward",
        },
    )

    code, out = redrive(capsys, tmp_path, "list", "--json")
    assert code == 0
    counts = {(g["source"], g["reason"]): g["count"] for g in json.loads(out)["groups"]}
    assert counts == {
        ("forward", "bad_enriched_event"): 1,
        ("forward", "ga4_invalid"): 4,
        ("forward", "max_delivery_attempts"): 1,
    }
    code, out = redrive(capsys, tmp_path, "--source", "forward", "--dry-run")
    assert code == 0
    assert out.count("would re-publish") == 6  # five lines and the summary
    assert f"would re-publish 5, {SKIPPED_BAD}, left 0, failed 0" in out
    assert pump(subscriptions["ENRICHED_TOPIC"]) == [], "a dry run publishes nothing"

    code, out = redrive(capsys, tmp_path, "--source", "forward")
    assert code == 0
    assert out.strip() == f"re-published 5, {SKIPPED_BAD}, left 0, failed 0"
    forwarder = app("forward")
    republished = pump(subscriptions["ENRICHED_TOPIC"], forwarder)
    assert sorted(m.attributes["event_id"] for m in republished) == [
        "e-1",
        "e-2",
        "e-2",
        "e-3",
        "e-4",
    ]
    for message in republished:
        assert not BOOKKEEPING & set(message.attributes)
        assert not any(name.startswith("CloudPubSub") for name in message.attributes)
        assert message.ordering_key == message.attributes["client_id"]
        body = json.loads(message.data)
        assert body == events[body["resolved"]["event_id"]], "the original bytes, unchanged"

    code, out = redrive(capsys, tmp_path, "--source", "forward")
    assert (code, out.strip()) == (0, f"re-published 0, {SKIPPED_BAD}, left 0, failed 0")
    assert pump(subscriptions["ENRICHED_TOPIC"], forwarder) == []
    assert sent_to_ga4(ga4) == {"e-1": 1, "e-2": 1, "e-3": 1, "e-4": 1}

    # Bad input published anyway comes straight back, with its reason.
    code, out = redrive(capsys, tmp_path, "--include-permanent", "--reason", "bad_enriched_event")
    assert (code, out.strip()) == (0, "re-published 1, skipped 0, left 0, failed 0")
    pump(subscriptions["ENRICHED_TOPIC"], forwarder)
    code, out = redrive(capsys, tmp_path, "--list")
    assert "bad_enriched_event (permanent)" in out
    assert "total 1," in out
    assert sent_to_ga4(ga4) == {"e-1": 1, "e-2": 1, "e-3": 1, "e-4": 1}


def publish_and_forward(instance: Any, body: dict[str, Any], subscription: str) -> None:
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(PROJECT, os.environ["ENRICHED_TOPIC"])
    publisher.publish(topic, json.dumps(body).encode(), event_id="x").result(timeout=10)
    assert len(pump(subscription, instance)) == 1


def raw_event(client_id: str, event_id: str, hours_ago: float) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "event_name": "page_view",
        "event_id": event_id,
        "timestamp_micros": time.time_ns() // 1_000 - int(hours_ago * 3_600_000_000),
        "page_location": "https://shop.example/",
    }


def test_resolve_dead_letters_pass_once_the_cause_is_fixed_and_reach_ga4_once(
    pipeline: tuple[dict[str, str], LocalGa4],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The resolver refuses events two hours old (``ALLOWED_LATENESS_HOURS=1``); with the
    setting fixed they resolve, and a repeat of one is answered identically."""
    subscriptions, ga4 = pipeline
    os.environ["ALLOWED_LATENESS_HOURS"] = "1"
    events = [
        raw_event("GA1.1.555.1763800000", "e-a", 2.0),
        raw_event("GA1.1.555.1763800000", "e-b", 1.9),
        raw_event("777.1763800000", "e-c", 2.0),
        {**raw_event("", "e-bad", 0.1), "client_id": None},
    ]
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(PROJECT, os.environ["RAW_EVENTS_TOPIC"])
    for event in events:
        attributes = {"event_name": "page_view"}
        if event["client_id"]:
            attributes["client_id"] = event["client_id"]
        publisher.publish(topic, json.dumps(event).encode(), **attributes).result(timeout=10)
    assert len(pump(subscriptions["RAW_EVENTS_TOPIC"], app("resolve"))) == 4
    assert pump(subscriptions["ENRICHED_TOPIC"]) == []

    code, out = redrive(capsys, tmp_path, "list")
    assert code == 0
    assert "resolve  missing_client_id (permanent)" in out
    assert "too_late" in out
    assert "total 4," in out

    os.environ["ALLOWED_LATENESS_HOURS"] = "72"  # the fix
    code, out = redrive(capsys, tmp_path, "--source", "resolve", "--verbose")
    assert code == 0
    assert out.splitlines()[-1] == f"re-published 3, {SKIPPED_BAD_RAW}, left 0, failed 0"
    assert "-> raw-" in out
    assert "key 555.1763800000" in out
    raw = pump(subscriptions["RAW_EVENTS_TOPIC"], app("resolve"))
    assert sorted(json.loads(m.data)["event_id"] for m in raw) == ["e-a", "e-b", "e-c"]
    assert {m.ordering_key for m in raw} == {"555.1763800000", "777.1763800000"}
    assert all(set(m.attributes) == {"client_id", "event_name"} for m in raw)
    first = {
        json.loads(m.data)["resolved"]["event_id"]: json.loads(m.data)["resolved"]
        for m in pump(subscriptions["ENRICHED_TOPIC"], app("forward"))
    }
    assert sorted(first) == ["e-a", "e-b", "e-c"]
    assert first["e-a"]["session_id"] == first["e-b"]["session_id"]

    # A second run finds nothing to do; a dead letter that came back (its ack lost) is
    # resolved again with the identical answer and does not reach GA4 twice.
    code, out = redrive(capsys, tmp_path, "--source", "resolve")
    assert (code, out.strip()) == (0, f"re-published 0, {SKIPPED_BAD_RAW}, left 0, failed 0")
    kept = {"client_id": events[0]["client_id"], "event_name": "page_view"}
    copy = PubSubMessage(json.dumps(events[0]).encode(), "m-copy", None, kept)
    letter = dead_letter_message(
        "t", PermanentError("too_late", "old"), copy, "resolve", time.time_ns() // 1_000
    )
    publish_dead_letter("RESOLVE_DEAD_LETTER_TOPIC", letter.data, dict(letter.attributes))
    code, out = redrive(capsys, tmp_path, "--source", "resolve", "--reason", "too_late")
    assert (code, out.strip()) == (0, "re-published 1, skipped 0, left 1, failed 0")
    pump(subscriptions["RAW_EVENTS_TOPIC"], app("resolve"))
    (again,) = pump(subscriptions["ENRICHED_TOPIC"], app("forward"))
    resolved = json.loads(again.data)["resolved"]
    assert resolved["duplicate"] is True
    assert resolved["session_id"] == first["e-a"]["session_id"]
    assert resolved["session_number"] == first["e-a"]["session_number"]
    assert sent_to_ga4(ga4) == {"e-a": 1, "e-b": 1, "e-c": 1}


def test_a_failed_publish_leaves_the_dead_letter_and_exits_1(
    pipeline: tuple[dict[str, str], LocalGa4],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    forward_envelope(enriched("e-1", "101.1763800000"), "ga4_invalid", "m-1")
    os.environ["ENRICHED_TOPIC"] = "no-such-topic"
    code, out = redrive(capsys, tmp_path, "--source", "forward")
    assert code == 1
    assert out.startswith("failed")
    assert out.splitlines()[-1] == "re-published 0, skipped 0, left 0, failed 1"
    code, out = redrive(capsys, tmp_path, "--source", "forward", "--dry-run")
    assert (code, out.splitlines()[-1]) == (
        0,
        "would re-publish 1, skipped 0, left 0, failed 0; nothing changed",
    )


def test_attached_to_a_running_pipeline_it_reads_that_pipelines_emulator(
    pipeline: tuple[dict[str, str], LocalGa4],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The state file of ``ga4-stitch run`` names the emulator and the topics; the
    environment need not."""
    forward_envelope(enriched("e-1", "101.1763800000"), "ga4_invalid", "m-1")
    topics = {
        "raw_events": os.environ["RAW_EVENTS_TOPIC"],
        "enriched": os.environ["ENRICHED_TOPIC"],
        "identity_links": os.environ["IDENTITY_LINKS_TOPIC"],
        "resolve_dead_letter": os.environ["RESOLVE_DEAD_LETTER_TOPIC"],
        "forward_dead_letter": os.environ["FORWARD_DEAD_LETTER_TOPIC"],
    }
    info = PipelineInfo(
        project=PROJECT,
        pubsub_host=os.environ["PUBSUB_EMULATOR_HOST"],
        firestore_host=os.environ["FIRESTORE_EMULATOR_HOST"],
        functions={},
        ga4_url="",
        ga4_record="",
        logs={},
        topics=topics,
        subscriptions={},
        measurement_id=MEASUREMENT_ID,
        pii_hash_secret="",
        pid=os.getpid(),
        process_groups=[],
    )
    info.save(tmp_path / "state" / "run.json")
    for name in ("PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", *TOPICS):
        os.environ.pop(name)
    code, out = redrive(capsys, tmp_path, "list")
    assert code == 0
    assert "forward  ga4_invalid" in out
    assert "total 1," in out
    assert "PUBSUB_EMULATOR_HOST" not in os.environ, "the environment is restored"
