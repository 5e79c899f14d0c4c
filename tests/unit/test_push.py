"""A push request read once: push bodies and CloudEvents reach the services alike."""

from __future__ import annotations

import base64
import json

import pytest
from werkzeug.datastructures import Headers

from shared.adapters.push import delivery
from shared.domain.messages import message_from_cloud_event
from shared.errors import InvalidEvent
from tests.cloudevents import pubsub_cloud_event

PAYLOAD = {"event_id": "e-1", "client_id": "1.2"}
MESSAGE = {
    "data": base64.b64encode(json.dumps(PAYLOAD).encode()).decode(),
    "messageId": "m-7",
    "publishTime": "2025-11-22T08:29:14.000Z",
    "attributes": {"client_id": "1.2"},
    "orderingKey": "1.2",
}
JSON = Headers({"Content-Type": "application/json"})


def decoded(body: bytes, headers: Headers) -> tuple[dict[str, object], str | None]:
    data, event_id = delivery(body, headers)
    message = message_from_cloud_event(data, event_id)
    return json.loads(message.data), message.message_id


def test_a_push_body_is_read_with_its_message_id() -> None:
    body = json.dumps({"message": MESSAGE, "subscription": "projects/p/subscriptions/s"})
    assert decoded(body.encode(), JSON) == (PAYLOAD, "m-7")


def test_the_snake_case_message_id_is_read_too() -> None:
    message = {**MESSAGE, "message_id": "m-8"}
    del message["messageId"]
    _, event_id = delivery(json.dumps({"message": message}).encode(), JSON)
    assert event_id == "m-8"


def test_a_structured_cloud_event_reads_as_its_push_body() -> None:
    event = pubsub_cloud_event(
        PAYLOAD,
        "ce-9",
        topic="t",
        subscription="s",
        publish_time="2025-11-22T08:29:14.000Z",
    )
    headers = Headers({"Content-Type": "application/cloudevents+json"})
    data, event_id = delivery(json.dumps(event).encode(), headers)
    assert event_id == "ce-9"
    assert json.loads(message_from_cloud_event(data, event_id).data) == PAYLOAD


def test_a_binary_cloud_event_reads_its_id_from_the_headers() -> None:
    headers = Headers(
        {
            "Content-Type": "application/json",
            "ce-id": "bin-3",
            "ce-specversion": "1.0",
            "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        }
    )
    body = json.dumps({"message": MESSAGE, "subscription": "s"}).encode()
    data, event_id = delivery(body, headers)
    assert event_id == "bin-3"
    assert json.loads(message_from_cloud_event(data, event_id).data) == PAYLOAD


def test_a_body_that_is_not_json_comes_back_as_text_for_its_dead_letter() -> None:
    data, event_id = delivery(b"\xffnot json", JSON)
    assert event_id is None
    assert data == "\\xffnot json"
    with pytest.raises(InvalidEvent) as refused:
        message_from_cloud_event(data, event_id)
    assert refused.value.reason == "not_pubsub"


def test_json_without_a_message_is_passed_on_to_be_refused() -> None:
    data, event_id = delivery(b'{"hello": "world"}', JSON)
    assert (data, event_id) == ({"hello": "world"}, None)


def test_a_broken_cloud_event_is_kept_whole_for_its_dead_letter() -> None:
    headers = Headers({"Content-Type": "application/cloudevents+json"})
    data, event_id = delivery(b'{"specversion": "1.0"}', headers)
    assert event_id is None
    assert "invalid_cloud_event" in data
    assert "specversion" in data["body"]
