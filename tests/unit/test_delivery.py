"""The local push loop behaves like a production Pub/Sub push subscription.

Fakes stand in for the emulator (``FakeSource``), the function (``FakePush``) and the
dead-letter topic; the policy is scaled down to milliseconds so the real threads run the
same schedule in a fraction of a second.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from werkzeug.datastructures import Headers

from ga4_stitch.delivery import (
    Pulled,
    PushLoop,
    RetryPolicy,
    backoff_schedule,
    backoff_seconds,
    dead_letter_attributes,
    push_body,
)
from ga4_stitch.pipeline import DeliveryPolicy
from shared.adapters.push import delivery
from shared.domain.messages import message_from_cloud_event
from tests.terraform.configuration import load_configuration

SUBSCRIPTION = "projects/demo-ga4-stitch/subscriptions/ga4-stitch-forward"
FAST = RetryPolicy(
    ack_deadline_seconds=3,
    minimum_backoff_seconds=0.02,
    maximum_backoff_seconds=0.08,
    max_delivery_attempts=5,
)


def pulled(message_id: str, key: str = "", data: bytes = b"{}") -> Pulled:
    return Pulled(
        ack_id=f"ack-{message_id}",
        message_id=message_id,
        data=data,
        attributes={"event_id": f"e-{message_id}"},
        ordering_key=key,
        publish_time="2025-01-02T03:04:05.678Z",
    )


@dataclass
class FakeSource:
    batches: list[list[Pulled]]
    acked: list[str] = field(default_factory=list)
    extended: list[tuple[str, int]] = field(default_factory=list)

    def pull(self, max_messages: int) -> list[Pulled]:
        if self.batches:
            return self.batches.pop(0)
        time.sleep(0.01)
        return []

    def acknowledge(self, ack_ids: Sequence[str]) -> None:
        self.acked.extend(ack_ids)

    def extend(self, ack_ids: Sequence[str], seconds: int) -> None:
        self.extended.extend((ack_id, seconds) for ack_id in ack_ids)


@dataclass
class Attempt:
    message_id: str
    key: str
    delivery_attempt: int
    started: float
    ended: float = 0.0


class FakePush:
    """Answers with ``answer(message_id, attempt)``; records every attempt and the most
    attempts of one ordering key that were ever in flight together."""

    def __init__(self, answer: Callable[[str, int], int | None], seconds: float = 0.0) -> None:
        self.answer = answer
        self.seconds = seconds
        self.attempts: list[Attempt] = []
        self.in_flight: dict[str, int] = {}
        self.most_in_flight_per_key = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, url: str, body: bytes, timeout: float) -> int | None:
        request = json.loads(body)
        message = request["message"]
        key = message.get("orderingKey", "")
        attempt = Attempt(message["messageId"], key, request["deliveryAttempt"], time.monotonic())
        with self._lock:
            self.attempts.append(attempt)
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
            if key:
                self.most_in_flight_per_key = max(self.most_in_flight_per_key, self.in_flight[key])
            self.most_in_flight = max(self.most_in_flight, sum(self.in_flight.values()))
        time.sleep(self.seconds)
        with self._lock:
            self.in_flight[key] -= 1
            attempt.ended = time.monotonic()
        return self.answer(attempt.message_id, attempt.delivery_attempt)


@dataclass
class FakeDeadLetters:
    published: list[tuple[bytes, dict[str, str], str]] = field(default_factory=list)

    def __call__(self, data: bytes, attributes: Mapping[str, str], ordering_key: str) -> None:
        self.published.append((data, dict(attributes), ordering_key))


def run_loop(
    source: FakeSource,
    push: FakePush,
    until: Callable[[], bool],
    *,
    policy: RetryPolicy = FAST,
    workers: int = 8,
    dead_letters: FakeDeadLetters | None = None,
    timeout: float = 10.0,
) -> PushLoop:
    loop = PushLoop(
        SUBSCRIPTION,
        "http://127.0.0.1:1/",
        policy,
        source=source,
        push=push,
        dead_letter=dead_letters or FakeDeadLetters(),
        workers=workers,
    ).start()
    try:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert until(), "the loop did not finish in time"
    finally:
        loop.stop()
    return loop


def always(status: int | None) -> Callable[[str, int], int | None]:
    return lambda message_id, attempt: status


# --------------------------------------------------------------------------- policy


def test_the_local_policy_is_terraforms() -> None:
    """``DeliveryPolicy``'s defaults are the production values in ``terraform/variables.tf``,
    which stay the one description of the policy."""
    variables = load_configuration().variables
    policy = DeliveryPolicy()
    assert policy.ack_deadline_seconds == variables["ack_deadline_seconds"]["default"]
    assert policy.minimum_backoff_seconds == variables["retry_minimum_backoff_seconds"]["default"]
    assert policy.maximum_backoff_seconds == variables["retry_maximum_backoff_seconds"]["default"]
    assert policy.max_delivery_attempts == variables["max_delivery_attempts"]["default"]


def test_backoff_doubles_from_the_minimum_and_stops_at_the_maximum() -> None:
    """Terraform's defaults: 10 s, doubling, capped at 600 s; nine waits between ten
    attempts, 2,430 s in all, so a message fails for 40 minutes before it is dead-lettered."""
    schedule = backoff_schedule(DeliveryPolicy().retry_policy())
    assert schedule == [10, 20, 40, 80, 160, 320, 600, 600, 600]
    assert sum(schedule) == 2430
    assert backoff_seconds(DeliveryPolicy().retry_policy(), 0) == 0
    assert backoff_seconds(DeliveryPolicy().retry_policy(), 1000) == 600


# --------------------------------------------------------------------------- requests


def test_the_push_body_is_what_the_functions_read_as_a_pubsub_message() -> None:
    """The functions read the push body themselves: the message id is the delivery's id,
    and the message decodes to the payload and attributes that were published."""
    message = pulled("m-1", key="123.456", data=b'{"event_id": "e-1"}')
    body = json.dumps(push_body(message, SUBSCRIPTION, 3)).encode()
    data, event_id = delivery(body, Headers({"Content-Type": "application/json"}))
    assert event_id == "m-1"
    decoded = message_from_cloud_event(data, event_id)
    assert decoded.data == b'{"event_id": "e-1"}'
    assert decoded.attributes == {"event_id": "e-m-1"}
    assert decoded.ordering_key == "123.456"


def test_the_push_body_carries_both_spellings_and_the_delivery_attempt() -> None:
    """As production sends it: ``messageId``/``message_id``, ``publishTime``/``publish_time``,
    the ordering key, the subscription path and ``deliveryAttempt``."""
    body = push_body(pulled("m-2", key="k"), SUBSCRIPTION, 7)
    assert body["subscription"] == SUBSCRIPTION
    assert body["deliveryAttempt"] == 7
    message = body["message"]
    assert message["messageId"] == message["message_id"] == "m-2"
    assert message["publishTime"] == message["publish_time"] == "2025-01-02T03:04:05.678Z"
    assert message["orderingKey"] == "k"
    assert "orderingKey" not in push_body(pulled("m-3"), SUBSCRIPTION, 1)["message"]


def test_dead_letter_attributes_are_pubsubs() -> None:
    """The original attributes plus the ones Pub/Sub adds when it dead-letters."""
    attributes = dead_letter_attributes(pulled("m-4"), SUBSCRIPTION, 10)
    assert attributes == {
        "event_id": "e-m-4",
        "CloudPubSubDeadLetterSourceDeliveryCount": "10",
        "CloudPubSubDeadLetterSourceSubscription": "ga4-stitch-forward",
        "CloudPubSubDeadLetterSourceSubscriptionProject": "demo-ga4-stitch",
        "CloudPubSubDeadLetterSourceTopicPublishTime": "2025-01-02T03:04:05.678Z",
    }


# --------------------------------------------------------------------------- the loop


def test_2xx_acknowledges_each_message_once() -> None:
    """Every message pushed once and acknowledged once; nothing dead-lettered."""
    source = FakeSource([[pulled(f"m-{n}") for n in range(20)]])
    push = FakePush(always(204))
    loop = run_loop(source, push, lambda: len(source.acked) == 20)
    assert sorted(source.acked) == sorted(f"ack-m-{n}" for n in range(20))
    assert len(push.attempts) == 20
    assert loop.stats.acknowledged == 20
    assert loop.stats.dead_lettered == 0


def test_one_message_per_ordering_key_in_flight_in_order_while_keys_run_in_parallel() -> None:
    """Per key: one attempt at a time, in the order received; different keys overlap."""
    keys = ["a", "b", "c", "d"]
    messages = [pulled(f"{key}{n}", key=key) for n in range(5) for key in keys]
    source = FakeSource([messages[:7], messages[7:]])
    push = FakePush(always(200), seconds=0.02)
    run_loop(source, push, lambda: len(source.acked) == len(messages))
    for key in keys:
        assert [a.message_id for a in push.attempts if a.key == key] == [
            f"{key}{n}" for n in range(5)
        ]
    assert push.most_in_flight_per_key == 1
    assert push.most_in_flight > 1


def test_a_failing_message_holds_back_its_key_only() -> None:
    """The head of key ``a`` fails twice: ``a``'s next message waits for it, key ``b``
    does not."""
    failures = {"a0": 2}

    def answer(message_id: str, attempt: int) -> int:
        return 503 if attempt <= failures.get(message_id, 0) else 200

    source = FakeSource([[pulled("a0", "a"), pulled("a1", "a"), pulled("b0", "b")]])
    push = FakePush(answer)
    run_loop(source, push, lambda: len(source.acked) == 3)
    order = [(a.message_id, a.delivery_attempt) for a in push.attempts]
    assert [item for item in order if item[0].startswith("a")] == [
        ("a0", 1),
        ("a0", 2),
        ("a0", 3),
        ("a1", 1),
    ]
    assert order.index(("b0", 1)) < order.index(("a0", 3))


def test_redeliveries_wait_out_the_exponential_backoff() -> None:
    """Attempt n + 1 starts no sooner than min_backoff * 2^(n-1) after attempt n ended."""
    source = FakeSource([[pulled("m-1", "k")]])
    push = FakePush(lambda message_id, attempt: 503 if attempt < 5 else 200)
    run_loop(source, push, lambda: len(source.acked) == 1)
    assert [a.delivery_attempt for a in push.attempts] == [1, 2, 3, 4, 5]
    gaps = [b.started - a.ended for a, b in zip(push.attempts, push.attempts[1:], strict=False)]
    expected = [0.02, 0.04, 0.08, 0.08]
    assert all(gap >= wanted - 0.002 for gap, wanted in zip(gaps, expected, strict=True)), gaps


@pytest.mark.parametrize("failure", [500, 429, 404, None])
def test_after_max_attempts_the_message_is_dead_lettered_with_pubsubs_attributes(
    failure: int | None,
) -> None:
    """Any non-2xx answer (or none) is a nack; the fifth failure publishes the message to
    the dead-letter topic, with its key and the delivery count, then acknowledges it and
    lets the key's next message through."""
    dead = FakeDeadLetters()
    data = b'{"resolved": {"event_id": "e-1"}}'
    source = FakeSource([[pulled("m-1", "k", data), pulled("m-2", "k")]])
    push = FakePush(lambda message_id, attempt: failure if message_id == "m-1" else 200)
    loop = run_loop(source, push, lambda: len(source.acked) == 2, dead_letters=dead)
    assert [a.delivery_attempt for a in push.attempts if a.message_id == "m-1"] == [1, 2, 3, 4, 5]
    ((published, attributes, key),) = dead.published
    assert (published, key) == (data, "k")
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert attributes["CloudPubSubDeadLetterSourceSubscription"] == "ga4-stitch-forward"
    assert source.acked == ["ack-m-1", "ack-m-2"]
    assert (loop.stats.dead_lettered, loop.stats.acknowledged, loop.stats.nacked) == (1, 1, 4)


def test_a_dead_letter_that_cannot_be_published_is_not_acknowledged() -> None:
    """Nothing is dropped silently: the message stays held and is tried again."""
    published: list[str] = []

    def flaky(data: bytes, attributes: Mapping[str, str], ordering_key: str) -> None:
        published.append(attributes["CloudPubSubDeadLetterSourceDeliveryCount"])
        if len(published) == 1:
            raise RuntimeError("dead-letter topic unavailable")

    source = FakeSource([[pulled("m-1", "k")]])
    loop = PushLoop(
        SUBSCRIPTION,
        "http://127.0.0.1:1/",
        FAST,
        source=source,
        push=FakePush(always(500)),
        dead_letter=flaky,
        workers=2,
    ).start()
    try:
        deadline = time.monotonic() + 5
        while not source.acked and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        loop.stop()
    assert published == ["5", "6"]
    assert source.acked == ["ack-m-1"]


def test_a_message_pulled_again_while_held_is_not_delivered_twice() -> None:
    """After a lapsed deadline the emulator may hand out a held message again: the loop
    keeps one copy and settles it with the newest ack id."""
    first = pulled("m-1", "k")
    again = Pulled(**{**first.__dict__, "ack_id": "ack-m-1-again"})
    gate = threading.Event()
    source = FakeSource([[first], [again]])

    def answer(message_id: str, attempt: int) -> int:
        gate.wait(2)
        return 200

    push = FakePush(answer)
    loop = PushLoop(
        SUBSCRIPTION,
        "u",
        FAST,
        source=source,
        push=push,
        dead_letter=FakeDeadLetters(),
        workers=4,
    ).start()
    try:
        deadline = time.monotonic() + 5
        while source.batches and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        gate.set()
        while not source.acked and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        loop.stop()
    assert len(push.attempts) == 1
    assert source.acked == ["ack-m-1-again"]


def test_held_messages_keep_their_ack_deadline_extended() -> None:
    """While a push is in flight (or queued, or backing off) the loop extends the
    message's deadline every third of it, so the emulator never redelivers it."""
    source = FakeSource([[pulled("m-1", "k"), pulled("m-2", "k")]])
    push = FakePush(always(200), seconds=1.2)
    run_loop(source, push, lambda: len(source.acked) == 2, workers=2)
    assert ("ack-m-2", 3) in source.extended
