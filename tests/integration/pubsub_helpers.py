"""Real Pub/Sub emulator plumbing for integration tests: topics, pull subscriptions, reads."""

from __future__ import annotations

import json
import time
from typing import Any

from google.cloud import pubsub_v1


def create_topic_with_subscription(project: str, topic: str) -> str:
    """Create ``topic`` and an ordered pull subscription on it; return the subscription path."""
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(project, topic)
    publisher.create_topic(name=topic_path)
    subscription = subscriber.subscription_path(project, f"{topic}-pull")
    subscriber.create_subscription(
        request={"name": subscription, "topic": topic_path, "enable_message_ordering": True}
    )
    return subscription


def pull_all(
    subscription: str, expected: int, timeout: float = 20.0, settle: float = 0.5
) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Pull until ``expected`` messages arrived and ``settle`` seconds bring no more."""
    subscriber = pubsub_v1.SubscriberClient()
    received: list[tuple[dict[str, Any], dict[str, str]]] = []
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": 100, "return_immediately": True},
            timeout=5,
        )
        if response.received_messages:
            quiet_since = None
            received.extend(
                (json.loads(item.message.data), dict(item.message.attributes))
                for item in response.received_messages
            )
            subscriber.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in response.received_messages],
                }
            )
            continue
        if len(received) >= expected:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle:
                break
        time.sleep(0.05)
    return received
