"""Concurrent calls grouped into one request: outcomes, order, keys, failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from shared.adapters.grouping import CallGroup


class Service:
    """A ``send`` that records each request and can be held in flight; it refuses a whole
    request holding an item ``refuses`` names."""

    def __init__(
        self,
        answer: Callable[[str], Any] = str.upper,
        refuses: Callable[[str], bool] | None = None,
    ) -> None:
        self.requests: list[list[str]] = []
        self.answer = answer
        self.refuses = refuses
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def send(self, items: list[str]) -> list[Any]:
        self.requests.append(list(items))
        self.entered.set()
        assert self.hold.wait(5)
        if self.refuses is not None and any(map(self.refuses, items)):
            raise RuntimeError("INVALID_ARGUMENT: the whole request")
        return [self.answer(item) for item in items]


def queued(group: CallGroup[Any, Any], count: int) -> None:
    deadline = time.monotonic() + 5
    while len(group._queue) < count:
        assert time.monotonic() < deadline, "callers never queued"
        time.sleep(0.001)


def call_in_threads(
    group: CallGroup[str, Any], items: list[str]
) -> tuple[list[threading.Thread], dict[str, Any]]:
    """Each item called from its own thread; the threads, and each item's outcome once
    they are joined."""
    results: dict[str, Any] = {}

    def run(item: str) -> None:
        try:
            results[item] = group(item)
        except Exception as error:  # noqa: BLE001 - the test looks at it
            results[item] = error

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return threads, results


def queued_behind_a_request(
    service: Service, group: CallGroup[str, Any], items: list[str]
) -> dict[str, Any]:
    """``items`` called while a first request is held in flight, so all of them queue; then
    the request released and every caller joined: each item's outcome."""
    service.hold.clear()
    first, _ = call_in_threads(group, ["first"])
    assert service.entered.wait(5)
    others, results = call_in_threads(group, items)
    queued(group, len(items))
    service.hold.set()
    join(first + others)
    return results


def join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()


def test_a_lone_call_is_sent_at_once_as_a_group_of_one() -> None:
    service = Service()
    group = CallGroup(service.send, max_items=10)
    assert group("a") == "A"
    assert group("b") == "B"
    assert service.requests == [["a"], ["b"]]


def test_calls_arriving_while_one_is_in_flight_go_together_in_the_next_request() -> None:
    service = Service()
    group = CallGroup(service.send, max_items=10)
    service.hold.clear()
    first, results = call_in_threads(group, ["first"])
    assert service.entered.wait(5)
    others, _ = call_in_threads(group, ["b", "c", "d"])
    queued(group, 3)
    service.hold.set()
    join(first + others)
    assert service.requests[0] == ["first"]
    assert sorted(service.requests[1]) == ["b", "c", "d"]
    assert len(service.requests) == 2
    assert results == {"first": "FIRST"}


def test_each_caller_gets_its_own_outcome_and_only_its_own_error() -> None:
    service = Service(lambda item: ValueError(item) if item == "bad" else item.upper())
    group = CallGroup(service.send, max_items=10)
    results = queued_behind_a_request(service, group, ["good", "bad", "fine"])
    assert results["good"] == "GOOD"
    assert results["fine"] == "FINE"
    assert isinstance(results["bad"], ValueError)


def test_items_with_one_key_never_share_a_request() -> None:
    service = Service()
    group = CallGroup(service.send, max_items=10, key=lambda item: item[0])
    service.hold.clear()
    first, _ = call_in_threads(group, ["z0"])
    assert service.entered.wait(5)
    others, results = call_in_threads(group, ["a1", "b1"])
    queued(group, 2)
    same, _ = call_in_threads(group, ["a2"])
    queued(group, 3)
    service.hold.set()
    join(first + others + same)
    assert service.requests[1:] == [["a1", "b1"], ["a2"]]
    assert results["a1"] == "A1"


def test_a_request_holds_at_most_max_items() -> None:
    service = Service()
    group = CallGroup(service.send, max_items=2)
    queued_behind_a_request(service, group, ["b", "c", "d", "e", "f"])
    assert [len(request) for request in service.requests] == [1, 2, 2, 1]
    sent = sorted(item for request in service.requests[1:] for item in request)
    assert sent == ["b", "c", "d", "e", "f"]


def test_a_group_refused_as_a_whole_is_sent_again_item_by_item() -> None:
    """One malformed item fails alone; the deliveries grouped with it go through."""
    service = Service(refuses=lambda item: item == "poison")
    group = CallGroup(service.send, max_items=10)
    results = queued_behind_a_request(service, group, ["a", "poison", "b"])
    assert results["a"] == "A"
    assert results["b"] == "B"
    assert isinstance(results["poison"], RuntimeError)
    assert sorted(service.requests[1]) == ["a", "b", "poison"]
    assert sorted(map(tuple, service.requests[2:])) == [("a",), ("b",), ("poison",)]


def test_a_failed_group_of_one_raises_to_its_caller_and_the_next_call_still_goes() -> None:
    calls: list[list[str]] = []

    def send(items: list[str]) -> list[str]:
        calls.append(items)
        if items == ["down"]:
            raise ConnectionError("unavailable")
        return [item.upper() for item in items]

    group = CallGroup(send, max_items=10)
    with pytest.raises(ConnectionError):
        group("down")
    assert group("up") == "UP"
    assert calls == [["down"], ["up"]]


def test_many_threads_each_get_their_own_result() -> None:
    service = Service()
    group = CallGroup(service.send, max_items=8)
    items = [f"item-{n}" for n in range(200)]
    threads, results = call_in_threads(group, items)
    join(threads)
    assert results == {item: item.upper() for item in items}
    assert sorted(item for request in service.requests for item in request) == sorted(items)
    assert all(len(request) <= 8 for request in service.requests)
