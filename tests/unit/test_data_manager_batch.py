"""Batching in the Data Manager sender: concurrent sends of a stream share one request, and
each caller still gets its own outcome (``shared.adapters.data_manager_batch``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from google.ads.datamanager_v1 import IngestEventsRequest
from google.api_core import exceptions as api_exceptions
from google.protobuf import json_format

from ga4_stitch.ga4_endpoint import LocalGa4
from shared.adapters.data_manager import DataManagerClient, DataManagerUnavailable
from shared.adapters.data_manager_batch import merged_request
from shared.bootstrap import destination_plan, ga4_sender, payload_rules
from shared.domain.datamanager import (
    AdsConversion,
    DataManagerDestination,
    DestinationPlan,
    ingest_request,
)
from shared.domain.measurement import PayloadRules, build_request
from shared.domain.messages import json_bytes
from shared.domain.validation import validate
from shared.errors import PermanentError, SettingsError, TransientError
from shared.ports import Ga4OutcomeUnknown
from shared.settings import Settings
from tests.unit.test_data_manager_client import refused
from tests.unit.test_datamanager_mapping import NOW, enriched

ADS = {"purchase": AdsConversion("1234567890", "987654321")}
PLAN = DestinationPlan(
    default="data_manager",
    data_manager={
        "G-SHOP": DataManagerDestination("123456789", "G-SHOP", ads_conversions=ADS),
        "G-BLOG": DataManagerDestination("222222222", "G-BLOG"),
    },
    measurement_ids=frozenset({"G-SHOP", "G-BLOG"}),
)


def body(event_id: str, name: str = "page_view", stream: str = "G-SHOP", **resolved: Any) -> bytes:
    """One enriched event's Data Manager request, as the forward service maps it: one GA4
    event (two for a purchase with Ads)."""
    event = enriched(name, event_id=event_id, earliest_in_session=False, **resolved)
    return mapped(event, stream, NOW)


def mapped(event: dict[str, Any], stream: str, now: int) -> bytes:
    request = build_request(event, PayloadRules(default_measurement_id=stream))
    repaired = validate(request.body, now_micros=now).body
    return json_bytes(ingest_request(repaired, PLAN.data_manager_for(stream)))


class BatchClient:
    """Thread-safe ``ingest_events``: records each request, answers with ``answer``."""

    def __init__(self, answer: Callable[[int, dict[str, Any]], BaseException | None]) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def ingest_events(self, request: Any, retry: Any, timeout: float, metadata: Any = ()) -> None:
        as_dict = json_format.MessageToDict(
            IngestEventsRequest.pb(request), preserving_proto_field_name=True
        )
        with self.lock:
            number = len(self.calls)
            self.calls.append({"request": as_dict, "metadata": dict(metadata)})
        error = self.answer(number, as_dict)
        if error is not None:
            raise error

    def ids(self, call: int) -> list[str]:
        return str(self.calls[call]["metadata"]["x-ga4-stitch-event-ids"]).split(",")


def always(error: BaseException | None = None) -> Callable[[int, dict[str, Any]], Any]:
    return lambda number, request: error


def batching(client: BatchClient, window: float = 5.0, max_events: int = 500) -> DataManagerClient:
    return DataManagerClient(
        client=client,
        batch_window_seconds=window,
        batch_max_events=max_events,
        sleep=lambda _: None,
        jitter=lambda low, high: 0.0,
    )


def send_all(
    sender: DataManagerClient, sends: Sequence[tuple[str, bytes, str]]
) -> dict[str, BaseException | None]:
    """Every send on its own thread at once; each event id -> what its send raised."""
    outcomes: dict[str, BaseException | None] = {}
    start = threading.Barrier(len(sends))

    def run(stream: str, raw: bytes, event_id: str) -> None:
        start.wait()
        try:
            sender.send(stream, raw, event_id=event_id)
            outcomes[event_id] = None
        except (PermanentError, TransientError) as exc:
            outcomes[event_id] = exc

    threads = [threading.Thread(target=run, args=send) for send in sends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def page_views(count: int, stream: str = "G-SHOP") -> list[tuple[str, bytes, str]]:
    return [(stream, body(f"e{i}", stream=stream), f"e{i}") for i in range(count)]


def test_concurrent_sends_of_a_stream_become_one_request() -> None:
    """Five callers, one request of five events naming each caller's event id once."""
    client = BatchClient(always())
    outcomes = send_all(batching(client, max_events=5), page_views(5))
    assert outcomes == dict.fromkeys(outcomes)
    [call] = client.calls
    assert len(call["request"]["events"]) == 5
    assert sorted(client.ids(0)) == [f"e{i}" for i in range(5)]
    assert [d["reference"] for d in call["request"]["destinations"]] == ["ga4"]


def test_a_window_ends_the_batch_when_it_is_not_full() -> None:
    """Three callers, room for 500: one request once the 0.3 s window has passed."""
    client = BatchClient(always())
    started = time.monotonic()
    outcomes = send_all(batching(client, window=0.3), page_views(3))
    assert outcomes == dict.fromkeys(outcomes)
    assert len(client.calls) == 1
    assert time.monotonic() - started >= 0.3


def test_a_window_of_zero_sends_each_event_alone_at_once() -> None:
    """No batcher: four requests of one event each, a lone send returns without waiting."""
    client = BatchClient(always())
    sender = batching(client, window=0.0)
    started = time.monotonic()
    sender.send("G-SHOP", body("solo"), event_id="solo")
    assert time.monotonic() - started < 0.5
    send_all(sender, page_views(3))
    assert [len(call["request"]["events"]) for call in client.calls] == [1, 1, 1, 1]
    assert client.ids(0) == ["solo"]


def test_a_refusal_naming_one_event_dead_letters_its_caller_and_resends_the_rest() -> None:
    """events[i] refused: that caller alone gets the reason; the others go in request two."""
    refused_id: list[str] = []

    def answer(number: int, request: dict[str, Any]) -> BaseException | None:
        if number == 0:
            refused_id.append(request["events"][2]["client_id"])
            return refused("INVALID_EVENT_NAME", "events[2].event_name")
        return None

    client = BatchClient(answer)
    sends = [("G-SHOP", body(f"e{i}", client_id=f"{i}.1"), f"e{i}") for i in range(4)]
    outcomes = send_all(batching(client, max_events=4), sends)
    bad = f"e{refused_id[0].split('.')[0]}"
    error = outcomes.pop(bad)
    assert isinstance(error, PermanentError)
    assert error.reason == "data_manager_invalid_event_name"
    assert json.loads(error.detail)["field"] == "events[0].event_name"
    assert outcomes == dict.fromkeys(outcomes)
    assert [len(call["request"]["events"]) for call in client.calls] == [4, 3]
    assert bad not in client.ids(1)


def test_a_refusal_naming_no_event_sends_each_caller_alone() -> None:
    """A refusal without an event index: each event is re-sent on its own, own outcome."""

    def answer(number: int, request: dict[str, Any]) -> BaseException | None:
        if number == 0:
            return api_exceptions.PermissionDenied("no access to one destination")
        if request["events"][0]["client_id"] == "2.1":
            return refused("INVALID_EVENT_NAME", "events[0].event_name")
        return None

    client = BatchClient(answer)
    sends = [("G-SHOP", body(f"e{i}", client_id=f"{i}.1"), f"e{i}") for i in range(3)]
    outcomes = send_all(batching(client, max_events=3), sends)
    assert isinstance(outcomes.pop("e2"), PermanentError)
    assert outcomes == {"e0": None, "e1": None}
    assert [len(call["request"]["events"]) for call in client.calls] == [3, 1, 1, 1]


def test_a_transient_failure_reaches_every_caller_after_one_set_of_retries() -> None:
    """Always 503: every caller raises DataManagerUnavailable; four attempts in all."""
    client = BatchClient(always(api_exceptions.ServiceUnavailable("down")))
    outcomes = send_all(batching(client, max_events=3), page_views(3))
    assert all(isinstance(error, DataManagerUnavailable) for error in outcomes.values())
    assert len(client.calls) == 4


def test_an_unknown_outcome_reaches_every_caller_and_is_never_resent() -> None:
    """DEADLINE_EXCEEDED: one request, every caller raises Ga4OutcomeUnknown."""
    client = BatchClient(always(api_exceptions.DeadlineExceeded("late")))
    outcomes = send_all(batching(client, max_events=3), page_views(3))
    assert all(isinstance(error, Ga4OutcomeUnknown) for error in outcomes.values())
    assert len(client.calls) == 1


def test_max_events_splits_the_callers_into_batches() -> None:
    """Six one-event callers, at most two events a request: three requests of two."""
    client = BatchClient(always())
    outcomes = send_all(batching(client, max_events=2), page_views(6))
    assert outcomes == dict.fromkeys(outcomes)
    assert [len(call["request"]["events"]) for call in client.calls] == [2, 2, 2]


def test_different_streams_never_share_a_request() -> None:
    """Two streams, three callers each: each request goes to one measurement id only."""
    client = BatchClient(always())
    send_all(batching(client, window=0.3), page_views(3) + page_views(3, stream="G-BLOG"))
    streams = [
        {d["product_destination_id"] for d in call["request"]["destinations"]}
        for call in client.calls
    ]
    assert sorted(map(sorted, streams)) == [["G-BLOG"], ["G-SHOP"]]
    assert [len(call["request"]["events"]) for call in client.calls] == [3, 3]


def test_each_event_keeps_its_callers_consent_in_a_merged_request() -> None:
    """Request-level consent moves onto each event; the event's own value wins."""
    granted = body("g", consent={"ad_user_data": "granted", "ad_personalization": "granted"})
    denied = body("d", consent={"ad_user_data": "denied", "ad_personalization": "denied"})
    client = BatchClient(always())
    send_all(batching(client, max_events=2), [("G-SHOP", granted, "g"), ("G-SHOP", denied, "d")])
    [call] = client.calls
    assert "consent" not in call["request"]
    by_id = dict(zip(client.ids(0), call["request"]["events"], strict=True))
    assert by_id["g"]["consent"] == {
        "ad_user_data": "CONSENT_GRANTED",
        "ad_personalization": "CONSENT_GRANTED",
    }
    assert by_id["d"]["consent"] == {
        "ad_user_data": "CONSENT_DENIED",
        "ad_personalization": "CONSENT_DENIED",
    }


def test_an_event_level_consent_wins_over_its_requests() -> None:
    """Merging keeps a value the event states itself (non_personalized_ads)."""
    part = {
        "destinations": [{"reference": "ga4"}],
        "events": [{"consent": {"ad_personalization": "CONSENT_DENIED"}}],
        "consent": {"ad_user_data": "CONSENT_GRANTED", "ad_personalization": "CONSENT_GRANTED"},
    }
    other = {"destinations": [{"reference": "ga4"}], "events": [{}], "encoding": "HEX"}
    request, spans = merged_request([part, other])
    assert request["events"][0]["consent"] == {
        "ad_user_data": "CONSENT_GRANTED",
        "ad_personalization": "CONSENT_DENIED",
    }
    assert "consent" not in request["events"][1]
    assert request["encoding"] == "HEX"
    assert spans == [range(0, 1), range(1, 2)]


def test_an_ads_copy_stays_with_its_caller() -> None:
    """A refusal naming a purchase's Google Ads copy dead-letters that purchase's caller;
    the copy is not listed among the event ids."""

    def answer(number: int, request: dict[str, Any]) -> BaseException | None:
        if number == 0:
            ads = next(
                index
                for index, event in enumerate(request["events"])
                if event["destination_references"] == ["ads_purchase"]
            )
            return refused("INVALID_CONVERSION_ACTION", f"events[{ads}].destination_references")
        return None

    client = BatchClient(answer)
    sends = [("G-SHOP", body("buy", name="purchase"), "buy"), *page_views(2)]
    outcomes = send_all(batching(client, max_events=4), sends)
    error = outcomes.pop("buy")
    assert isinstance(error, PermanentError)
    assert json.loads(error.detail)["field"] == "events[1].destination_references"
    assert outcomes == {"e0": None, "e1": None}
    assert sorted(client.ids(0)) == ["buy", "e0", "e1"]
    assert len(client.calls[0]["request"]["events"]) == 4
    references = sorted(d["reference"] for d in client.calls[0]["request"]["destinations"])
    assert references == ["ads_purchase", "ga4"]
    assert sorted(client.ids(1)) == ["e0", "e1"]
    assert len(client.calls[1]["request"]["events"]) == 2


def test_the_official_client_batches_into_the_local_endpoint() -> None:
    """Three concurrent sends: one POST, one accepted record per event, its own event id."""
    now = time.time_ns() // 1_000
    with LocalGa4() as ga4:
        sender = DataManagerClient(
            endpoint=ga4.url,
            batch_window_seconds=5.0,
            batch_max_events=3,
            sleep=lambda _: None,
        )
        sends = []
        for i in range(3):
            event = enriched("page_view", event_id=f"e{i}", earliest_in_session=False)
            event["resolved"]["timestamp_micros"] = now
            sends.append(("G-SHOP", mapped(event, "G-SHOP", now), f"e {i}/x"))
        outcomes = send_all(sender, sends)
        assert outcomes == dict.fromkeys(outcomes)
        records = ga4.accepted()
    assert sorted(record["event_id"] for record in records) == ["e 0/x", "e 1/x", "e 2/x"]
    assert len({record["request_id"] for record in records}) == 1
    assert all(len(record["body"]["events"]) == 1 for record in records)


def test_the_batch_settings_default_to_a_second_and_500_events_and_reach_the_sender() -> None:
    """Defaults 1000 ms / 500; DATA_MANAGER_BATCH_WINDOW_MS lengthens the sender's bound."""
    base = {
        "GOOGLE_CLOUD_PROJECT": "p",
        "GA4_MEASUREMENT_ID": "G-SHOP",
        "GA4_DESTINATION": "data_manager",
        "GA4_PROPERTY_ID": "123456789",
        "DATA_MANAGER_ENDPOINT": "http://127.0.0.1:9",
    }
    defaults = Settings.from_env(base).ga4
    assert (defaults.data_manager_batch_window_ms, defaults.data_manager_batch_max_events) == (
        1000,
        500,
    )
    settings = Settings.from_env(base | {"DATA_MANAGER_BATCH_WINDOW_MS": "250"})
    sender = ga4_sender(settings, destination_plan(settings, payload_rules(settings)))
    assert isinstance(sender, DataManagerClient)
    assert sender.longest_send_seconds == 0.25 + 20.0 + 5.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATA_MANAGER_BATCH_WINDOW_MS", "-1"),
        ("DATA_MANAGER_BATCH_WINDOW_MS", "10001"),
        ("DATA_MANAGER_BATCH_MAX_EVENTS", "0"),
        ("DATA_MANAGER_BATCH_MAX_EVENTS", "2001"),
    ],
)
def test_batch_settings_out_of_range_name_their_variable(name: str, value: str) -> None:
    """Outside 0..10000 ms or 1..2000 events: a SettingsError naming the variable."""
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p", name: value})
