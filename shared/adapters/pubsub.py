"""Publishing to Pub/Sub: the ``Publisher`` interface and its google-cloud-pubsub adapter.

Invariant: ``publish_all`` returns only once every message is accepted by Pub/Sub, or
raises ``TransientError`` (so the delivery that caused it is retried; receivers
deduplicate by ``event_id``). Ordering keys are enabled: a failed publish pauses its key
inside the client library, so the adapter resumes the key before raising, or every later
message of that client would fail too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.errors import PermanentError, TransientError
from shared.logs import get_logger
from shared.domain.messages import PubSubMessage

log = get_logger("pubsub")


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    """Short topic name (the adapter adds the project)."""
    data: bytes
    ordering_key: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


class Publisher(Protocol):
    def publish_all(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish every message, or raise ``TransientError``."""


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def dead_letter_message(
    topic: str, error: PermanentError, message: PubSubMessage, source: str
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
        "dead_lettered_at": datetime.now(UTC).isoformat(),
    }
    attributes = {
        "reason": error.reason,
        "source": source,
        "message_id": message.message_id,
        **{k: v for k, v in message.attributes.items() if k in {"client_id", "event_name"}},
    }
    return OutgoingMessage(topic=topic, data=json_bytes(body), attributes=attributes)


class PubSubPublisher:
    """``Publisher`` over ``google.cloud.pubsub_v1.PublisherClient`` with message ordering."""

    def __init__(self, project: str, timeout_seconds: float = 30.0) -> None:
        from google.cloud.pubsub_v1 import PublisherClient, types

        self._project = project
        self._timeout = timeout_seconds
        self._client = PublisherClient(
            batch_settings=types.BatchSettings(max_latency=0.005),
            publisher_options=types.PublisherOptions(enable_message_ordering=True),
        )

    def topic_path(self, topic: str) -> str:
        return str(self._client.topic_path(self._project, topic))

    def publish_all(self, messages: Sequence[OutgoingMessage]) -> None:
        from google.api_core import exceptions as gexc

        pending = []
        for message in messages:
            path = self.topic_path(message.topic)
            future = self._client.publish(
                path, message.data, ordering_key=message.ordering_key, **message.attributes
            )
            pending.append((path, message.ordering_key, future))
        failures = []
        for path, key, future in pending:
            try:
                future.result(timeout=self._timeout)
            except (gexc.GoogleAPIError, TimeoutError, RuntimeError) as exc:
                failures.append((path, exc))
                if key:
                    self._client.resume_publish(path, key)
        if failures:
            path, first = failures[0]
            log.warning(
                "publish failed",
                extra={"event": "publish_failed", "topic": path, "failures": len(failures)},
            )
            raise TransientError(f"publishing to {path} failed: {first}") from first
