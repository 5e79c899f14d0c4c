"""Publishing to Pub/Sub: the ``Publisher`` port over google-cloud-pubsub.

Invariant: ``publish_all`` returns only once every message is accepted by Pub/Sub, or
raises ``TransientError`` (so the delivery that caused it is retried; receivers
deduplicate by ``event_id``). Messages keep their ordering keys.

Each call publishes synchronously, one ``Publish`` RPC per topic in the order the messages
came, through the client's generated (GAPIC) method. The library's batching publisher is
not used: a function publishes one or two messages per delivery and waits for them, so
batching bought nothing and cost, per message, a batch, a future, an ordering sequencer
and a commit thread started and woken after ``max_latency`` (about a sixth of the resolve
function's CPU per event, measured by ``benchmarks/profile_functions.py``). Order per key
holds because a key's next message is published only after this one was accepted (one
browser's deliveries reach an instance one at a time, in order); there is no client-side
pause of a failed key to resume, since nothing is queued behind it in the library.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from shared.domain.messages import OutgoingMessage
from shared.errors import TransientError
from shared.logs import get_logger
from shared.ports import Publisher

__all__ = ["LazyPublisher", "PubSubPublisher"]

log = get_logger("pubsub")


class PubSubPublisher:
    """``Publisher`` over ``google.cloud.pubsub_v1.PublisherClient``'s channel.

    The wrapper client is kept for what it adds to the generated one (the emulator
    channel from ``PUBSUB_EMULATOR_HOST``); its batching ``publish`` is bypassed for the
    generated method it overrides. A publish is retried on the codes the generated
    method retries (unavailable, deadline, aborted...) within ``timeout_seconds`` in all.
    """

    def __init__(self, project: str, timeout_seconds: float = 30.0) -> None:
        from google.cloud.pubsub_v1 import PublisherClient
        from google.pubsub_v1.services.publisher import client as gapic

        self._project = project
        self._timeout = timeout_seconds
        self._client = PublisherClient()
        self._retry = _publish_retry(timeout_seconds)
        self._publish: Callable[..., Any] = gapic.PublisherClient.publish
        self._paths: dict[str, str] = {}

    def topic_path(self, topic: str) -> str:
        path = self._paths.get(topic)
        if path is None:
            path = self._paths[topic] = str(self._client.topic_path(self._project, topic))
        return path

    def publish_all(self, messages: Sequence[OutgoingMessage]) -> None:
        from google.api_core import exceptions as gexc
        from google.pubsub_v1.types import PubsubMessage

        by_topic: dict[str, list[Any]] = defaultdict(list)
        for message in messages:
            by_topic[self.topic_path(message.topic)].append(
                PubsubMessage(
                    data=message.data,
                    ordering_key=message.ordering_key,
                    attributes=dict(message.attributes),
                )
            )
        for path, batch in by_topic.items():
            try:
                self._publish(
                    self._client,
                    topic=path,
                    messages=batch,
                    retry=self._retry,
                    timeout=self._timeout,
                )
            except (gexc.GoogleAPIError, TimeoutError, RuntimeError) as exc:
                log.warning(
                    "publish failed",
                    extra={"event": "publish_failed", "topic": path, "failures": len(batch)},
                )
                raise TransientError(f"publishing to {path} failed: {exc}") from exc


def _publish_retry(deadline_seconds: float) -> Any:
    """The GAPIC ``Publish`` method's own default retry (the codes and backoff of
    ``google.pubsub_v1``'s transport), bounded by ``deadline_seconds`` instead of 600 s."""
    from google.api_core import exceptions as gexc
    from google.api_core import retry

    return retry.Retry(
        initial=0.1,
        maximum=60.0,
        multiplier=4,
        predicate=retry.if_exception_type(
            gexc.Aborted,
            gexc.Cancelled,
            gexc.DeadlineExceeded,
            gexc.InternalServerError,
            gexc.ResourceExhausted,
            gexc.ServiceUnavailable,
            gexc.Unknown,
        ),
        timeout=deadline_seconds,
    )


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
