"""Publishing to Pub/Sub: the ``Publisher`` port over google-cloud-pubsub.

Invariant: ``publish_all`` returns only once every message is accepted by Pub/Sub, or
raises ``TransientError`` (so the delivery that caused it is retried; receivers
deduplicate by ``event_id``). Ordering keys are enabled: a failed publish pauses its key
inside the client library, so the adapter resumes the key before raising, or every later
message of that client would fail too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from shared.domain.messages import OutgoingMessage
from shared.errors import TransientError
from shared.logs import get_logger
from shared.ports import Publisher

__all__ = ["LazyPublisher", "PubSubPublisher"]

log = get_logger("pubsub")


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


class LazyPublisher:
    """A ``Publisher`` built on first use: most forward instances never dead-letter."""

    def __init__(self, factory: Callable[[], Publisher]) -> None:
        self._factory = factory
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()

    def publish_all(self, messages: Sequence[OutgoingMessage]) -> None:
        with self._lock:
            if self._publisher is None:
                self._publisher = self._factory()
        self._publisher.publish_all(messages)
