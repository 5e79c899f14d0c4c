"""Pub/Sub messages: the one inside a CloudEvent, decoded once for both functions, and the
ones the services publish (enriched events, identity links, dead letters).

Eventarc delivers ``{"message": {"data", "attributes", "messageId", "publishTime",
"orderingKey"}, "subscription"}`` as the CloudEvent's data; functions-framework converts a
push subscription's body into the same shape (it keeps data, attributes, messageId and
publishTime). Invariant: decoding never raises anything but ``InvalidEvent``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.errors import InvalidEvent, PermanentError

__all__ = [
    "OutgoingMessage",
    "PubSubMessage",
    "dead_letter_message",
    "json_bytes",
    "message_from_cloud_event",
]


@dataclass(frozen=True)
class PubSubMessage:
    data: bytes
    message_id: str
    publish_time_micros: int | None
    attributes: Mapping[str, str] = field(default_factory=dict)
    ordering_key: str | None = None

    def json_object(self) -> dict[str, Any]:
        """The data as a JSON object, or ``InvalidEvent`` saying why it is not one."""
        try:
            value = json.loads(self.data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidEvent("not_json", f"message data is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise InvalidEvent(
                "not_an_object", f"message data is JSON {type(value).__name__}, not an object"
            )
        return value

    def text(self, limit: int = 10_000) -> str:
        """The data as text for a dead letter (bytes that are not UTF-8 stay visible)."""
        return self.data[:limit].decode("utf-8", errors="backslashreplace")


def parse_rfc3339_micros(value: str) -> int:
    """``2024-01-02T03:04:05.123456Z`` (any fraction length) as Unix microseconds."""
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{(digits + '000000')[:6]}{zone}"
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def message_from_cloud_event(data: Any, event_id: str | None = None) -> PubSubMessage:
    """Decode a Pub/Sub CloudEvent's ``data`` (Eventarc or converted push format)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("message"), Mapping):
        raise InvalidEvent("not_pubsub", "CloudEvent data has no Pub/Sub 'message' object")
    message = data["message"]
    encoded = message.get("data", "")
    try:
        payload = base64.b64decode(encoded, validate=True) if encoded else b""
    except (binascii.Error, TypeError, ValueError) as exc:
        raise InvalidEvent("not_base64", f"message data is not base64: {exc}") from None
    publish_time = message.get("publishTime") or message.get("publish_time")
    try:
        publish_micros = parse_rfc3339_micros(publish_time) if publish_time else None
    except ValueError:
        publish_micros = None
    message_id = message.get("messageId") or message.get("message_id") or event_id or ""
    attributes = message.get("attributes") or {}
    return PubSubMessage(
        data=payload,
        message_id=str(message_id),
        publish_time_micros=publish_micros,
        attributes={str(k): str(v) for k, v in attributes.items()},
        ordering_key=message.get("orderingKey") or None,
    )


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    """Short topic name (the adapter adds the project)."""
    data: bytes
    ordering_key: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def dead_letter_message(
    topic: str, error: PermanentError, message: PubSubMessage, source: str, now_micros: int
) -> OutgoingMessage:
    """A dead letter that keeps the original payload and says why it was refused."""
    body = {
        "reason": error.reason,
        "detail": error.detail,
        "source": source,
        "message_id": message.message_id,
        "publish_time_micros": message.publish_time_micros,
        "attributes": dict(message.attributes),
        "payload": message.text(),
        "dead_lettered_at": datetime.fromtimestamp(now_micros / 1_000_000, UTC).isoformat(),
    }
    attributes = {
        "reason": error.reason,
        "source": source,
        "message_id": message.message_id,
        **{k: v for k, v in message.attributes.items() if k in {"client_id", "event_name"}},
    }
    return OutgoingMessage(topic=topic, data=json_bytes(body), attributes=attributes)
