"""Publishing to Pub/Sub: the ``Publisher`` port over google-cloud-pubsub.

Invariant: ``publish_all`` returns only once every message is accepted by Pub/Sub, or
raises ``TransientError`` (so the delivery that caused it is retried; receivers
deduplicate by ``event_id``). Messages keep their ordering keys.

Each call publishes synchronously, per topic in the order the messages came, as a raw
protobuf ``Publish`` on the client's channel (``shared.adapters.rpc``: half the CPU of the
generated method). Deliveries served at the same time share a request: what is published
to a topic while a request to it is in flight goes in the next one
(``shared.adapters.grouping``; a quiet instance publishes at once, alone). The library's
batching publisher is not used: a function publishes one or two messages per delivery
and waits for them, so
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

from shared.adapters.grouping import CallGroup
from shared.adapters.rpc import UnaryCall, routing_metadata
from shared.domain.messages import OutgoingMessage
from shared.errors import TransientError
from shared.logs import get_logger
from shared.ports import Publisher

__all__ = ["LazyPublisher", "PubSubPublisher"]

log = get_logger("pubsub")

MAX_GROUPED_PUBLISHES = 100
"""Deliveries' messages per ``Publish`` (the API takes 1,000 messages and 10 MB)."""


class PubSubPublisher:
    """``Publisher`` over ``google.cloud.pubsub_v1.PublisherClient``'s channel.

    The library client is kept for its channel (credentials, endpoint, the emulator's
    from ``PUBSUB_EMULATOR_HOST``); its batching ``publish`` is not used. A publish is
    retried on the codes the generated method retries (unavailable, deadline, aborted...)
    within ``timeout_seconds`` in all.
    """

    def __init__(self, project: str, timeout_seconds: float = 30.0) -> None:
        from google.cloud.pubsub_v1 import PublisherClient
        from google.pubsub_v1.types import pubsub

        self._project = project
        client = PublisherClient()
        self._publish = UnaryCall(
            client.transport.grpc_channel,
            "/google.pubsub.v1.Publisher/Publish",
            pubsub.PublishRequest.pb(),
            pubsub.PublishResponse.pb(),
            timeout=timeout_seconds,
            retry=_publish_retry(timeout_seconds),
        )
        self._request = pubsub.PublishRequest.pb()
        self._message = pubsub.PubsubMessage.pb()
        self._topics: dict[str, tuple[str, CallGroup[list[Any], list[str]]]] = {}
        self._topics_lock = threading.Lock()

    def _topic(self, topic: str) -> tuple[str, CallGroup[list[Any], list[str]]]:
        """The topic's resource name and the group its publishes go through."""
        found = self._topics.get(topic)
        if found is None:
            with self._topics_lock:
                found = self._topics.get(topic)
                if found is None:
                    path = f"projects/{self._project}/topics/{topic}"
                    group = CallGroup(self._sender(path), max_items=MAX_GROUPED_PUBLISHES)
                    found = self._topics[topic] = (path, group)
        return found

    def _sender(self, path: str) -> Callable[[list[list[Any]]], list[list[str]]]:
        """One ``Publish`` of every caller's messages, in order; each caller's ids."""
        routing = (routing_metadata("topic", path),)

        def send(batches: list[list[Any]]) -> list[list[str]]:
            messages = [message for batch in batches for message in batch]
            response = self._publish(self._request(topic=path, messages=messages), routing)
            ids = list(response.message_ids)
            if len(ids) != len(messages):
                raise RuntimeError(f"{len(ids)} message ids for {len(messages)} messages")
            answers, start = [], 0
            for batch in batches:
                answers.append(ids[start : start + len(batch)])
                start += len(batch)
            return answers

        return send

    def publish_all(self, messages: Sequence[OutgoingMessage]) -> None:
        from google.api_core import exceptions as gexc

        by_topic: dict[str, list[Any]] = defaultdict(list)
        for message in messages:
            by_topic[message.topic].append(
                self._message(
                    data=message.data,
                    ordering_key=message.ordering_key,
                    attributes=message.attributes,
                )
            )
        for topic, batch in by_topic.items():
            path, group = self._topic(topic)
            try:
                group(batch)
            except (gexc.GoogleAPIError, TimeoutError, RuntimeError) as exc:
                log.warning(
                    "publish failed",
                    extra={"event": "publish_failed", "topic": path, "failures": len(batch)},
                )
                raise TransientError(f"publishing to {path} failed: {exc}") from exc


def _publish_retry(deadline_seconds: float) -> Any:
    """The generated ``Publish`` method's own default retry (the codes and backoff of
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
