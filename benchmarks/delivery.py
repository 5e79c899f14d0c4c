"""Delivering a stream of raw events to a design the way Pub/Sub would, and timing it.

Modes (``workers`` threads, events handed out in delivery order):

- ``sequential``: one worker.
- ``ordered``: every event of one ordering key goes to the same worker, keyed as
  ``ga4_stitch.replay`` keys by default: the canonical client id the GTM tag uses (the
  ``GA1.n.`` prefix dropped), and a cross-domain client following the client its ``_gl``
  landing carried (a burst compresses the seconds that keep a hop in order in real
  traffic).
- ``unordered``: any free worker takes the next event (push without ordering keys), so
  one client's events race each other.

A delivery that raises (``TransientError`` after the resolver's own retries, or any
crash, which a function answers with a 500) is redelivered: in place for ``sequential``
and ``ordered`` (an ordering key holds back the later messages of its key), at the back
of the queue for ``unordered``; after ``MAX_DELIVERIES`` attempts the event is lost.
Latency is the wall time of one delivery attempt: decode, resolve, persist.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.designs import Answer, Design, DesignFactory
from ga4_stitch.replay import CanonicalKeys
from shared.domain.events import decode_raw_event
from shared.errors import InvalidEvent

MODES = ("sequential", "ordered", "unordered")
MAX_DELIVERIES = 20
Item = tuple[int, dict[str, Any], int]
"""Position in the stream, payload, deliveries so far."""


@dataclass
class Run:
    """What one pass of a stream through a design produced."""

    mode: str
    workers: int
    deliveries: int
    elapsed: float = 0.0
    sent: list[dict[str, Any]] = field(default_factory=list)
    """SENT lines in completion order."""
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    redeliveries: int = 0
    crashes: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def events_per_second(self) -> float:
        return self.deliveries / self.elapsed if self.elapsed else 0.0

    def record(self, answer: Answer, seconds: float) -> None:
        with self._lock:
            self.statuses[answer.status] += 1
            self.latencies.append(seconds)
            if answer.sent is not None:
                self.sent.append(answer.sent)

    def failed(self, error: BaseException, seconds: float, *, final: bool) -> None:
        with self._lock:
            self.latencies.append(seconds)
            self.crashes[f"{type(error).__name__}: {str(error)[:80]}"] += 1
            self.redeliveries += not final
            self.lost += final


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _answer(design: Design, payload: dict[str, Any], position: int) -> Answer:
    try:
        event = decode_raw_event(payload, f"m{position}", None)
    except InvalidEvent as error:
        return Answer(f"dead_lettered:{error.reason}")
    return design.answer(event)


def _attempt(design: Design, item: Item, run: Run) -> bool:
    """One delivery; True when it was acknowledged."""
    position, payload, deliveries = item
    started = time.perf_counter()
    try:
        answer = _answer(design, payload, position)
    except Exception as error:  # noqa: BLE001 - a crash answers 500 and Pub/Sub redelivers
        final = deliveries + 1 >= MAX_DELIVERIES
        run.failed(error, time.perf_counter() - started, final=final)
        return final
    run.record(answer, time.perf_counter() - started)
    return True


def _in_order(design: Design, inbox: queue.Queue[Item | None], run: Run) -> None:
    while (item := inbox.get()) is not None:
        position, payload, deliveries = item
        while not _attempt(design, (position, payload, deliveries), run):
            deliveries += 1


def _any_order(design: Design, inbox: queue.Queue[Item | None], run: Run) -> None:
    while (item := inbox.get()) is not None:
        if not _attempt(design, item, run):
            position, payload, deliveries = item
            inbox.put((position, payload, deliveries + 1))
        inbox.task_done()


def deliver(
    payloads: Sequence[dict[str, Any]], factory: DesignFactory, mode: str, workers: int = 8
) -> Run:
    """Push every payload through the design in ``mode`` and measure it."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    count = 1 if mode == "sequential" else workers
    designs = [factory(worker) for worker in range(count)]
    run = Run(mode=mode, workers=count, deliveries=len(payloads))
    inboxes: list[queue.Queue[Item | None]] = [
        queue.Queue() for _ in range(1 if mode == "unordered" else count)
    ]
    target = _any_order if mode == "unordered" else _in_order
    threads = [
        threading.Thread(target=target, args=(design, inboxes[n % len(inboxes)], run))
        for n, design in enumerate(designs)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    keys = CanonicalKeys()
    for position, payload in enumerate(payloads):
        inboxes[_route(keys, payload, len(inboxes))].put((position, payload, 0))
    if mode == "unordered":
        inboxes[0].join()
    for n in range(count):
        inboxes[n % len(inboxes)].put(None)
    for thread in threads:
        thread.join()
    run.elapsed = time.perf_counter() - started
    return run


def _route(keys: CanonicalKeys, payload: dict[str, Any], inboxes: int) -> int:
    received = str(payload.get("client_id", ""))
    key = keys.key(payload, received)
    return zlib.crc32(key.encode()) % inboxes if inboxes > 1 else 0
