"""The resolve function through functions-framework against the real emulators."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from typing import Any

import functions_framework
import pytest
from google.cloud import firestore

from tests.cloudevents import pubsub_cloud_event
from tests.conftest import PROJECT
from tests.integration.pubsub_helpers import pull_all

pytestmark = pytest.mark.integration

MAIN = os.path.join(os.path.dirname(__file__), "..", "..", "functions", "main.py")
NOW_MICROS = time.time_ns() // 1_000


def make_app() -> Any:
    """A fresh function instance (its own settings, clients and state cache)."""
    return functions_framework.create_app("resolve", MAIN, "http").test_client()


def cloud_event(
    data: dict[str, Any] | bytes, message_id: str, publish_micros: int
) -> dict[str, Any]:
    seconds, micros = divmod(publish_micros, 1_000_000)
    publish_time = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"
    return pubsub_cloud_event(
        data,
        message_id,
        topic="ga4-stitch-raw-events",
        subscription="raw-push",
        publish_time=publish_time,
    )


def deliver(app: Any, data: dict[str, Any] | bytes, message_id: str) -> int:
    response = app.post(
        "/",
        json=cloud_event(data, message_id, NOW_MICROS),
        headers={"Content-Type": "application/cloudevents+json"},
    )
    return int(response.status_code)


def page_view(client_id: str, minute: float, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "event_name": "page_view",
        "event_id": event_id,
        "timestamp_micros": NOW_MICROS - 3_600_000_000 + int(minute * 60_000_000),
        "x-ga-measurement_id": "G-TEST000001",
        "page_location": "https://shop.example.com/",
        **extra,
    }


def test_an_event_is_enriched_and_published_with_its_session(topics: dict[str, str]) -> None:
    """A raw event comes out on the enriched topic with a GA4 session and ordering attributes."""
    app = make_app()
    event = page_view("GA1.1.111.222", 0, "e1")
    assert deliver(app, event, "m1") == 200
    [(enriched, attributes)] = pull_all(topics["ENRICHED_TOPIC"], 1)
    resolved = enriched["resolved"]
    assert resolved["client_id"] == "111.222"
    assert resolved["session_id"] == event["timestamp_micros"] // 1_000_000
    assert resolved["session_number"] == 1
    assert resolved["is_new_session"] is True
    assert attributes["client_id"] == "111.222"
    assert attributes["event_id"] == "e1"
    assert enriched["page_location"] == "https://shop.example.com/"


def test_push_body_from_a_subscription_is_accepted_like_an_eventarc_event(
    topics: dict[str, str],
) -> None:
    """A Pub/Sub push body (no CloudEvent envelope) resolves exactly like an Eventarc event."""
    app = make_app()
    event = page_view("333.444", 0, "push-1")
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(event).encode()).decode(),
            "messageId": "push-m1",
            "publishTime": "2026-01-01T00:00:00.000Z",
            "attributes": {"client_id": "333.444"},
        },
        "subscription": f"projects/{PROJECT}/subscriptions/raw-push",
    }
    assert app.post("/", json=body).status_code == 200
    [(enriched, _)] = pull_all(topics["ENRICHED_TOPIC"], 1)
    assert enriched["resolved"]["event_id"] == "push-1"


def test_a_login_stitches_later_anonymous_events_and_publishes_one_link(
    topics: dict[str, str],
) -> None:
    """After a login, anonymous events of the client carry the user; the link is published once."""
    app = make_app()
    assert deliver(app, page_view("5.6", 0, "a1"), "m1") == 200
    assert (
        deliver(app, page_view("5.6", 1, "a2", user_id="cust-1", event_name="login"), "m2") == 200
    )
    assert deliver(app, page_view("5.6", 2, "a3"), "m3") == 200
    enriched = [body["resolved"] for body, _ in pull_all(topics["ENRICHED_TOPIC"], 3)]
    by_id = {r["event_id"]: r for r in enriched}
    assert by_id["a1"]["user_id"] is None
    assert by_id["a2"]["identity_source"] == "incoming"
    assert (by_id["a3"]["user_id"], by_id["a3"]["identity_source"]) == ("cust-1", "stitched")
    links = pull_all(topics["IDENTITY_LINKS_TOPIC"], 1)
    assert [(body["client_id"], body["user_id"]) for body, _ in links] == [("5.6", "cust-1")]
    users = list(firestore.Client(project=PROJECT).collection("users").stream())
    assert len(users) == 1
    assert users[0].id.startswith("u_")
    assert "cust-1" not in users[0].id
    assert users[0].to_dict()["client_ids"] == ["5.6"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json at all", "not_json"),
        (b"[1, 2]", "not_an_object"),
        ({"event_name": "page_view", "client_id": ""}, "missing_client_id"),
        ({"client_id": "1.2"}, "missing_event_name"),
        ({"client_id": "undefined", "event_name": "x"}, "malformed_client_id"),
        ({"client_id": "1.2", "event_name": "x", "timestamp_micros": "soon"}, "unparseable_time"),
        ({"client_id": "1.2", "event_name": "x", "timestamp_micros": 1000}, "absurd_time"),
        (
            {
                "client_id": "1.2",
                "event_name": "x",
                "timestamp_micros": NOW_MICROS - 80 * 3_600_000_000,
            },
            "too_late",
        ),
    ],
)
def test_bad_input_is_dead_lettered_with_its_reason_and_acknowledged(
    topics: dict[str, str], payload: dict[str, Any] | bytes, reason: str
) -> None:
    """Bad input answers 200 (acknowledged), lands on the dead-letter topic with a reason."""
    app = make_app()
    assert deliver(app, payload, "bad-1") == 200
    [(letter, attributes)] = pull_all(topics["RESOLVE_DEAD_LETTER_TOPIC"], 1)
    assert attributes["reason"] == reason
    assert letter["reason"] == reason
    assert letter["source"] == "resolve"
    original = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    assert letter["payload"] == original.decode()
    assert pull_all(topics["ENRICHED_TOPIC"], 0, timeout=1) == []


def test_a_redelivery_gets_the_identical_answer_and_is_counted_once(
    topics: dict[str, str],
) -> None:
    """The same message delivered twice, even to another instance, resolves identically."""
    first, second = make_app(), make_app()
    assert deliver(first, page_view("7.8", 0, "r1"), "m-r1") == 200
    assert deliver(first, page_view("7.8", 5, "r2"), "m-r2") == 200
    assert deliver(second, page_view("7.8", 0, "r1"), "m-r1") == 200
    results = [body["resolved"] for body, _ in pull_all(topics["ENRICHED_TOPIC"], 3)]
    copies = [r for r in results if r["event_id"] == "r1"]
    assert len(copies) == 2
    assert {k: v for k, v in copies[0].items() if k != "duplicate"} == {
        k: v for k, v in copies[1].items() if k != "duplicate"
    }
    assert sorted(r["duplicate"] for r in copies) == [False, True]
    stored = firestore.Client(project=PROJECT).collection("clients").document("7.8").get()
    assert stored.to_dict()["events"] == 2


def test_racing_deliveries_for_one_client_still_make_one_session(
    topics: dict[str, str],
) -> None:
    """Instances racing on one client never open two sessions nor lose an event index."""
    count = 8
    apps = [make_app() for _ in range(4)]
    statuses: list[int] = []

    def run(worker: int) -> None:
        statuses.extend(
            deliver(apps[worker], page_view("9.9", index * 0.1, f"c{index}"), f"mc{index}")
            for index in range(worker, count, len(apps))
        )

    threads = [threading.Thread(target=run, args=(w,)) for w in range(len(apps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * count
    results = [body["resolved"] for body, _ in pull_all(topics["ENRICHED_TOPIC"], count)]
    assert len(results) == count
    assert {r["session_id"] for r in results} == {min(r["session_id"] for r in results)}
    assert sorted(r["event_index"] for r in results) == list(range(1, count + 1))
    assert sum(r["is_new_session"] for r in results) == 1
    stored = firestore.Client(project=PROJECT).collection("clients").document("9.9").get()
    assert stored.to_dict()["events"] == count


def test_a_server_managed_client_id_is_stored_under_a_safe_document_id(
    topics: dict[str, str],
) -> None:
    """Client ids with '/' (server-managed) get a safe document id and keep the original."""
    app = make_app()
    client_id = "ZDoa3Sn32zo3RN66kguVogdtbQB1xZr/EBDR9gylXKA=.1647778941"
    assert deliver(app, page_view(client_id, 0, "s1"), "m-s1") == 200
    [doc] = list(firestore.Client(project=PROJECT).collection("clients").stream())
    assert "/" not in doc.id
    assert doc.to_dict()["client_id"] == client_id
    assert doc.to_dict()["expire_at"] is not None


def test_consent_denied_leaves_no_state_and_no_user(topics: dict[str, str]) -> None:
    """analytics_storage denied: enriched without user or session, nothing written to Firestore."""
    app = make_app()
    event = page_view("4.4", 0, "d1", user_id="cust-9", **{"x-ga-gcs": "G100"})
    assert deliver(app, event, "m-d1") == 200
    [(enriched, _)] = pull_all(topics["ENRICHED_TOPIC"], 1)
    assert enriched["resolved"]["user_id"] is None
    assert enriched["resolved"]["session_id"] is None
    assert enriched["resolved"]["consent"]["analytics_storage"] == "denied"
    db = firestore.Client(project=PROJECT)
    assert list(db.collection("clients").stream()) == []
    assert list(db.collection("users").stream()) == []


def test_a_session_whose_landing_arrives_late_keeps_one_source(topics: dict[str, str]) -> None:
    """The email landing delivered after the session's next page: the session keeps the
    source it was opened with, and the late landing is marked as its earliest event."""
    app = make_app()
    landing = page_view(
        "444.555",
        0,
        "landing",
        page_location="https://shop.example.com/?utm_source=news&utm_medium=email",
    )
    second = page_view("444.555", 2, "second", page_referrer="https://www.google.com/")
    assert deliver(app, second, "m-second") == 200
    assert deliver(app, landing, "m-landing") == 200
    received = pull_all(topics["ENRICHED_TOPIC"], 2)
    resolved = {body["resolved"]["event_id"]: body["resolved"] for body, _ in received}
    assert resolved["second"]["session_id"] == resolved["landing"]["session_id"]
    assert resolved["second"]["traffic_source"] == resolved["landing"]["traffic_source"]
    assert resolved["landing"]["traffic_source"]["source"] == "google"
    assert resolved["landing"]["traffic_source"]["medium"] == "organic"
    assert resolved["second"]["earliest_in_session"] is True
    assert resolved["landing"]["earliest_in_session"] is True
    assert resolved["landing"]["late"] is True
