"""Concurrent calls to one RPC sent together: a group commit with no waiting window.

Why: an instance serves many deliveries at once (Cloud Run's concurrency), and each pays
gRPC's fixed CPU per RPC (about 0.3 to 0.45 ms on the emulator) for a request that carries
one document or one message. Measured on the Firestore emulator, CPU per document written:
0.49 ms in a ``BatchWrite`` of one, 0.17 ms in one of four, 0.10 ms in one of eight.
Firestore bills documents and Pub/Sub bytes, not requests, so grouping changes no bill.

How (leader and followers): a call that finds no request in flight sends at once, as a
group of one, so a quiet instance waits for nothing. Calls that arrive while a request is
in flight queue; when it returns, the first queued caller sends everything queued (up to
``max_items``) as the next request. No timer, no background thread: every request is sent
by a caller's own thread, and a caller returns as soon as its item's outcome is known.

Invariants:
- Every item gets exactly one outcome, its own result or error; a caller never returns
  before its item's request answered.
- Items whose ``key`` is equal never share a request (Firestore's ``BatchWrite`` refuses
  two writes to one document); the later one waits for the next request, in order.
- A grouped request that fails as a whole is sent again item by item, so one item the
  service refuses (a malformed write) fails alone, never the deliveries it was grouped
  with; a failure of a group of one is that item's error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ["CallGroup"]

Item = TypeVar("Item")
Result = TypeVar("Result")

Outcomes = Sequence["Result | BaseException"]


class _Slot(Generic[Item, Result]):
    __slots__ = ("done", "error", "item", "key", "leads", "result")

    def __init__(self, item: Item, key: Hashable) -> None:
        self.item = item
        self.key = key
        self.done = threading.Event()
        self.leads = False
        self.result: Result | None = None
        self.error: BaseException | None = None

    def settle(self, outcome: Result | BaseException) -> None:
        if isinstance(outcome, BaseException):
            self.error = outcome
        else:
            self.result = outcome
        self.done.set()

    def outcome(self) -> Result:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class CallGroup(Generic[Item, Result]):
    """``group(item)`` -> the item's result, sent with whatever else is queued.

    ``send`` takes a list of items and returns one outcome per item, in order: a result,
    or the exception that item's caller raises. An exception raised by ``send`` itself is
    the whole request's failure (see the module's invariants).
    """

    def __init__(
        self,
        send: Callable[[list[Item]], Outcomes[Result]],
        *,
        max_items: int,
        key: Callable[[Item], Hashable] | None = None,
    ) -> None:
        self._send = send
        self._max = max(1, max_items)
        self._key = key
        self._lock = threading.Lock()
        self._queue: list[_Slot[Item, Result]] = []
        self._busy = False

    def __call__(self, item: Item) -> Result:
        slot: _Slot[Item, Result] = _Slot(item, self._key(item) if self._key else None)
        with self._lock:
            self._queue.append(slot)
            leads = not self._busy
            self._busy = True
        if not leads:
            slot.done.wait()
            if not slot.leads:
                return slot.outcome()
        self._send_queued()
        return slot.outcome()

    def _send_queued(self) -> None:
        """Send the queue's head as one request, settle its items, hand the lead on."""
        with self._lock:
            group = self._take()
        try:
            outcomes = self._outcomes(group)
        except BaseException as error:  # noqa: BLE001 - settled below, whatever it is
            outcomes = [error] * len(group)
        with self._lock:
            if self._queue:
                following = self._queue[0]
                following.leads = True
                following.done.set()
            else:
                self._busy = False
        for slot, outcome in zip(group, outcomes, strict=True):
            slot.settle(outcome)

    def _take(self) -> list[_Slot[Item, Result]]:
        """Up to ``max_items`` queued slots, oldest first, no two with the same key."""
        group: list[_Slot[Item, Result]] = []
        keys: set[Hashable] = set()
        kept: list[_Slot[Item, Result]] = []
        for slot in self._queue:
            if len(group) < self._max and (slot.key is None or slot.key not in keys):
                group.append(slot)
                if slot.key is not None:
                    keys.add(slot.key)
            else:
                kept.append(slot)
        self._queue = kept
        return group

    def _outcomes(self, group: list[_Slot[Item, Result]]) -> Outcomes[Result]:
        items = [slot.item for slot in group]
        try:
            outcomes = self._send(items)
        except Exception as error:  # noqa: BLE001 - each item's caller raises its own
            if len(items) == 1:
                return [error]
            return [self._alone(item) for item in items]
        if len(outcomes) != len(items):
            mismatch = RuntimeError(f"{len(outcomes)} outcomes for {len(items)} items")
            return [mismatch] * len(items)
        return outcomes

    def _alone(self, item: Item) -> Result | BaseException:
        try:
            (outcome,) = self._send([item])
        except Exception as error:  # noqa: BLE001 - that item's caller raises it
            return error
        return outcome
