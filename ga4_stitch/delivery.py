"""Local push delivery: what a Pub/Sub push subscription does, done by ``ga4-stitch run``.

The Pub/Sub emulator's own push loop is unlike production in ways that lose events: it
ignores the retry policy's backoff (it redelivers about every 1.3 s, so ten attempts are
spent in seconds), and the first time it dead-letters a push message its push thread dies
(``NullPointerException``) and never pushes again. So the local pipeline creates *pull*
subscriptions, and ``PushLoop`` pulls from them and pushes to the functions exactly as a
production push subscription would:

- the request: ``POST`` of ``{"message": {"data", "messageId", "message_id", "publishTime",
  "publish_time", "attributes", "orderingKey"}, "subscription", "deliveryAttempt"}`` as
  JSON, which functions-framework turns into the Pub/Sub CloudEvent the functions read;
- an answer 2xx acknowledges; anything else, no answer within the ack deadline, or no
  connection is a negative acknowledgement;
- a nacked message waits ``backoff_seconds`` (the retry policy: ``minimum_backoff`` doubled
  per failed attempt, capped at ``maximum_backoff``) before its next attempt;
- after ``max_delivery_attempts`` failed attempts it is published to the dead-letter topic
  with its data, attributes and ordering key, plus the attributes Pub/Sub adds
  (``dead_letter_attributes``), and acknowledged;
- ordering: messages of one ordering key are attempted one at a time, in the order they
  were received, and a message waiting out its backoff holds back the rest of its key (as
  an ordered subscription does); messages without a key, and different keys, run in
  parallel on a bounded pool of workers.

Invariants: a message is acknowledged on the emulator only after the function answered 2xx
or after its dead letter was published, so a crash of ``run`` itself loses nothing (the
emulator redelivers what was never acknowledged); while the loop holds a message (queued,
in flight or backing off) it keeps extending the message's ack deadline, so the emulator
never redelivers it behind the loop's back. Delivery attempts are counted in memory: a
restarted ``run`` starts counting again, as a restarted subscriber of Pub/Sub would not.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "DeadLetterSink",
    "Pulled",
    "PushLoop",
    "Pusher",
    "RetryPolicy",
    "Source",
    "backoff_schedule",
    "backoff_seconds",
    "dead_letter_attributes",
    "push_body",
]

ACK_BATCH = 500


@dataclass(frozen=True)
class RetryPolicy:
    """A push subscription's delivery policy (``terraform/pubsub.tf``), in seconds."""

    ack_deadline_seconds: float
    minimum_backoff_seconds: float
    maximum_backoff_seconds: float
    max_delivery_attempts: int


@dataclass(frozen=True)
class Pulled:
    """One message as pulled, with the ack id that settles it."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    ordering_key: str
    publish_time: str
    """RFC 3339, as Pub/Sub writes ``publishTime``."""


class Source(Protocol):
    """A pull subscription (the emulator's, or a fake)."""

    def pull(self, max_messages: int) -> list[Pulled]: ...
    def acknowledge(self, ack_ids: Sequence[str]) -> None: ...
    def extend(self, ack_ids: Sequence[str], seconds: int) -> None: ...


class Pusher(Protocol):
    """POSTs one push request; the HTTP status, or None when no answer came in time."""

    def __call__(self, url: str, body: bytes, timeout: float) -> int | None: ...


class DeadLetterSink(Protocol):
    def __call__(self, data: bytes, attributes: Mapping[str, str], ordering_key: str) -> None: ...


def backoff_seconds(policy: RetryPolicy, failed_attempts: int) -> float:
    """The wait after the ``failed_attempts``-th failed attempt of a message:
    ``minimum_backoff * 2 ** (failed_attempts - 1)``, never above ``maximum_backoff``."""
    if failed_attempts < 1:
        return 0.0
    exponent = min(failed_attempts - 1, 62)
    return float(min(policy.maximum_backoff_seconds, policy.minimum_backoff_seconds * 2**exponent))


def backoff_schedule(policy: RetryPolicy) -> list[float]:
    """Every wait between the attempts of a message that always fails: one fewer than
    ``max_delivery_attempts`` (the last failure dead-letters at once)."""
    return [backoff_seconds(policy, n) for n in range(1, policy.max_delivery_attempts)]


def push_body(message: Pulled, subscription: str, delivery_attempt: int) -> dict[str, Any]:
    """The JSON body of a production push request (both spellings of the id and time,
    as Pub/Sub sends them; ``deliveryAttempt`` because a dead-letter policy is set)."""
    return {
        "message": {
            "data": base64.b64encode(message.data).decode("ascii"),
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": message.publish_time,
            "publish_time": message.publish_time,
            "attributes": dict(message.attributes),
            **({"orderingKey": message.ordering_key} if message.ordering_key else {}),
        },
        "subscription": subscription,
        "deliveryAttempt": delivery_attempt,
    }


def dead_letter_attributes(
    message: Pulled, subscription: str, delivery_count: int
) -> dict[str, str]:
    """The message's own attributes plus those Pub/Sub adds when it dead-letters one
    (``subscription`` is the full ``projects/P/subscriptions/S`` path)."""
    parts = subscription.split("/")
    project, name = (parts[1], parts[3]) if len(parts) == 4 else ("", subscription)
    return {
        **message.attributes,
        "CloudPubSubDeadLetterSourceDeliveryCount": str(delivery_count),
        "CloudPubSubDeadLetterSourceSubscription": name,
        "CloudPubSubDeadLetterSourceSubscriptionProject": project,
        "CloudPubSubDeadLetterSourceTopicPublishTime": message.publish_time,
    }


@dataclass
class _Held:
    message: Pulled
    failed: int = 0


@dataclass
class _Key:
    queue: deque[_Held] = field(default_factory=deque)
    busy: bool = False
    """Its head is being attempted, or is scheduled in the ready heap."""


@dataclass
class PushStats:
    """What the loop did (counts of attempts, not of messages, except where named)."""

    received: int = 0
    acknowledged: int = 0
    nacked: int = 0
    dead_lettered: int = 0
    errors: list[str] = field(default_factory=list)


class PushLoop:
    """One push subscription: pulls from ``source``, pushes to ``url``; see the module
    docstring. ``start`` runs it on threads; ``stop`` ends them (messages still held are
    left unacknowledged, so the emulator redelivers them to whoever pulls next)."""

    def __init__(
        self,
        subscription: str,
        url: str,
        policy: RetryPolicy,
        *,
        source: Source,
        push: Pusher,
        dead_letter: DeadLetterSink,
        workers: int = 24,
        max_outstanding: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.subscription = subscription
        self.url = url
        self.policy = policy
        self.stats = PushStats()
        self._source = source
        self._push = push
        self._dead_letter = dead_letter
        self._workers = workers
        self._max_outstanding = max_outstanding
        self._clock = clock
        self._report = report or (lambda _: None)
        self._lock = threading.Condition()
        self._keys: dict[str, _Key] = {}
        self._held: dict[str, str] = {}
        """message id -> current ack id, of every message the loop holds."""
        self._ready: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._acks: list[str] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PushLoop:
        name = self.subscription.rsplit("/", 1)[-1]
        targets = [(self._pull_forever, "pull"), (self._housekeep_forever, "lease")]
        targets += [(self._work_forever, f"push-{n}") for n in range(self._workers)]
        for target, role in targets:
            thread = threading.Thread(target=target, name=f"{name}-{role}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            self._flush_acks()
        self._threads.clear()

    def outstanding(self) -> int:
        with self._lock:
            return len(self._held)

    # ------------------------------------------------------------------ receiving

    def receive(self, messages: Sequence[Pulled]) -> None:
        """Queue pulled messages behind their key (a message the loop already holds, pulled
        again after a lapsed deadline, only refreshes its ack id)."""
        now = self._clock()
        with self._lock:
            for message in messages:
                if message.message_id in self._held:
                    self._held[message.message_id] = message.ack_id
                    continue
                self.stats.received += 1
                self._held[message.message_id] = message.ack_id
                key = message.ordering_key or f"\0{message.message_id}"
                state = self._keys.setdefault(key, _Key())
                state.queue.append(_Held(message))
                if not state.busy:
                    state.busy = True
                    heapq.heappush(self._ready, (now, next(self._sequence), key))
            self._lock.notify_all()

    def _pull_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            room = self._max_outstanding - self.outstanding()
            if room <= 0:
                self._stopping.wait(0.05)
                continue
            try:
                messages = self._source.pull(min(room, 500))
            except Exception as exc:  # noqa: BLE001 - the emulator may be restarting; keep going
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    self._note(f"pull from {self.subscription} failed ({failures}x): {exc}")
                self._stopping.wait(min(2.0, 0.1 * failures))
                continue
            failures = 0
            if messages:
                self.receive(messages)

    # ------------------------------------------------------------------ delivering

    def _next(self) -> tuple[str, _Held] | None:
        with self._lock:
            while not self._stopping.is_set():
                now = self._clock()
                if self._ready and self._ready[0][0] <= now:
                    _, _, key = heapq.heappop(self._ready)
                    return key, self._keys[key].queue[0]
                wait = self._ready[0][0] - now if self._ready else 1.0
                self._lock.wait(min(wait, 1.0))
        return None

    def _work_forever(self) -> None:
        while (job := self._next()) is not None:
            self.attempt(*job)

    def attempt(self, key: str, held: _Held) -> None:
        """One delivery attempt of the head of ``key``, and what follows from its answer."""
        attempt = held.failed + 1
        body = json.dumps(push_body(held.message, self.subscription, attempt)).encode()
        try:
            status = self._push(self.url, body, self.policy.ack_deadline_seconds)
        except Exception:  # noqa: BLE001 - any failure to get an answer is a nack
            status = None
        if status is not None and 200 <= status < 300:
            self._settle(key, held, "acknowledged")
            return
        held.failed = attempt
        if attempt >= self.policy.max_delivery_attempts:
            attributes = dead_letter_attributes(held.message, self.subscription, attempt)
            try:
                self._dead_letter(held.message.data, attributes, held.message.ordering_key)
            except Exception as exc:  # noqa: BLE001 - retried like a failed delivery
                self._note(f"dead letter of {held.message.message_id} not published: {exc}")
            else:
                self._settle(key, held, "dead_lettered")
                return
        with self._lock:
            self.stats.nacked += 1
            delay = backoff_seconds(self.policy, min(attempt, self.policy.max_delivery_attempts))
            heapq.heappush(self._ready, (self._clock() + delay, next(self._sequence), key))
            self._lock.notify_all()

    def _settle(self, key: str, held: _Held, outcome: str) -> None:
        with self._lock:
            if outcome == "acknowledged":
                self.stats.acknowledged += 1
            else:
                self.stats.dead_lettered += 1
            state = self._keys[key]
            state.queue.popleft()
            ack_id = self._held.pop(held.message.message_id, held.message.ack_id)
            self._acks.append(ack_id)
            if state.queue:
                heapq.heappush(self._ready, (self._clock(), next(self._sequence), key))
            else:
                del self._keys[key]
            self._lock.notify_all()

    # ------------------------------------------------------------------ leases and acks

    def _housekeep_forever(self) -> None:
        every = max(1.0, self.policy.ack_deadline_seconds / 3)
        last_extend = time.monotonic()
        while not self._stopping.wait(0.05):
            try:
                self._flush_acks()
                if time.monotonic() - last_extend >= every:
                    last_extend = time.monotonic()
                    with self._lock:
                        held = list(self._held.values())
                    for start in range(0, len(held), ACK_BATCH):
                        self._source.extend(
                            held[start : start + ACK_BATCH], int(self.policy.ack_deadline_seconds)
                        )
            except Exception as exc:  # noqa: BLE001 - retried on the next round
                self._note(f"acknowledging on {self.subscription} failed: {exc}")
                self._stopping.wait(1.0)

    def _flush_acks(self) -> None:
        with self._lock:
            acks, self._acks = self._acks, []
        try:
            for start in range(0, len(acks), ACK_BATCH):
                self._source.acknowledge(acks[start : start + ACK_BATCH])
        except Exception:
            with self._lock:
                self._acks[:0] = acks
            raise

    def _note(self, text: str) -> None:
        with self._lock:
            self.stats.errors.append(text)
            del self.stats.errors[:-20]
        self._report(text)


# --------------------------------------------------------------------------- emulator wiring


class EmulatorSource:
    """``Source`` over a pull subscription of the Pub/Sub emulator."""

    def __init__(self, subscriber: Any, subscription: str, wait_seconds: float = 2.0) -> None:
        self._subscriber = subscriber
        self._subscription = subscription
        self._wait = wait_seconds

    def pull(self, max_messages: int) -> list[Pulled]:
        from google.api_core import exceptions as gexc

        try:
            response = self._subscriber.pull(
                request={"subscription": self._subscription, "max_messages": max_messages},
                timeout=self._wait,
            )
        except gexc.DeadlineExceeded:
            return []
        return [
            Pulled(
                ack_id=item.ack_id,
                message_id=item.message.message_id,
                data=bytes(item.message.data),
                attributes=dict(item.message.attributes),
                ordering_key=item.message.ordering_key,
                publish_time=_rfc3339(item.message.publish_time),
            )
            for item in response.received_messages
        ]

    def acknowledge(self, ack_ids: Sequence[str]) -> None:
        if ack_ids:
            self._subscriber.acknowledge(
                request={"subscription": self._subscription, "ack_ids": list(ack_ids)}, timeout=10
            )

    def extend(self, ack_ids: Sequence[str], seconds: int) -> None:
        if ack_ids:
            self._subscriber.modify_ack_deadline(
                request={
                    "subscription": self._subscription,
                    "ack_ids": list(ack_ids),
                    "ack_deadline_seconds": seconds,
                },
                timeout=10,
            )


def _rfc3339(moment: Any) -> str:
    """A proto-plus ``DatetimeWithNanoseconds`` (or a datetime) as Pub/Sub writes it."""
    rfc3339 = getattr(moment, "rfc3339", None)
    if callable(rfc3339):
        return str(rfc3339())
    return str(moment.isoformat().replace("+00:00", "Z"))


class HttpPusher:
    """``Pusher`` over one pooled, thread-safe urllib3 manager (no retries: a failed push
    is the subscription's to retry, with its backoff)."""

    def __init__(self, connections: int) -> None:
        import urllib3

        self._pool = urllib3.PoolManager(maxsize=connections, block=False, retries=False)

    def __call__(self, url: str, body: bytes, timeout: float) -> int | None:
        import urllib3

        try:
            response = self._pool.request(
                "POST",
                url,
                body=body,
                headers={"Content-Type": "application/json"},
                timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError:
            return None
        return int(response.status)


class EmulatorDeadLetters:
    """``DeadLetterSink`` publishing to a dead-letter topic, waiting for the publish."""

    def __init__(self, publisher: Any, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    def __call__(self, data: bytes, attributes: Mapping[str, str], ordering_key: str) -> None:
        # Ordering is the subscription's business on the dead-letter topic too; publish
        # without a key, so one failed publish cannot pause a key on this publisher.
        self._publisher.publish(self._topic, data, **attributes).result(timeout=30)
