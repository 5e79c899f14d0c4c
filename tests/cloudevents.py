"""What the functions receive, built as Pub/Sub and functions-framework build it, for tests.

One builder for every test that posts a Pub/Sub CloudEvent to a function, and one for the
HTTP requests of the inline endpoints, so the shape tested is the shape delivered.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Request
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder

from tests.conftest import PROJECT


def pubsub_cloud_event(
    payload: dict[str, Any] | bytes,
    message_id: str,
    *,
    topic: str,
    subscription: str,
    publish_time: str,
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A structured-mode CloudEvent of one Pub/Sub message, as Eventarc delivers it."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {
        "specversion": "1.0",
        "id": message_id,
        "source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/{topic}",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "datacontenttype": "application/json",
        "data": {
            "message": {
                "data": base64.b64encode(raw).decode(),
                "messageId": message_id,
                "publishTime": publish_time,
                "attributes": attributes or {},
            },
            "subscription": f"projects/{PROJECT}/subscriptions/{subscription}",
        },
    }


def http_request(body: Any, method: str = "POST", headers: dict[str, str] | None = None) -> Request:
    """A JSON request as functions-framework hands it to an HTTP function."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = Headers({"Content-Type": "application/json", **(headers or {})})
    return Request(EnvironBuilder(method=method, data=data, headers=sent).get_environ())
