"""The pure parts of replay: input lines, ordering keys, SENT lines, dead letters, percentiles."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from ga4_stitch import warehouse
from ga4_stitch.replay import (
    ReplaySummary,
    _Export,
    dead_letter_event_id,
    duplicate_counts,
    parse_lines,
    percentile,
    sent_line,
)
from shared.domain.crossdomain.linker import encode_linker

EVENT = {"client_id": "123.456", "event_name": "page_view", "event_id": "e-1"}
AGENT = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"


def line(**fields: object) -> str:
    return json.dumps({**EVENT, **fields})


def test_bad_lines_are_reported_with_their_line_numbers_and_the_rest_kept() -> None:
    """Not JSON and not an object are reported; blank lines are skipped but still counted."""
    parsed = parse_lines([line(), "{not json", "", "[1, 2]", line(event_id="e-2"), "  \n"])
    assert [event.line for event in parsed.events] == [1, 5]
    assert [(bad.line, bad.reason.split(" (")[0]) for bad in parsed.bad] == [
        (2, "not JSON"),
        (4, "a JSON list, not an object"),
    ]
    assert parsed.lines == 6


def test_the_line_is_published_exactly_as_read() -> None:
    """Bytes are not re-serialised: what the file holds is what the resolver decodes."""
    text = '{"event_name":"page_view",  "client_id":"1.2", "x": 1.50}\n'
    (event,) = parse_lines([text.encode()]).events
    assert event.data == text.strip().encode()


def test_objects_can_be_replayed_without_a_file() -> None:
    """A list of dicts (a simulation's deliveries) is numbered like lines."""
    parsed = parse_lines([dict(EVENT), {**EVENT, "event_id": "e-2"}])
    assert [(event.line, event.event_id) for event in parsed.events] == [(1, "e-1"), (2, "e-2")]
    assert json.loads(parsed.events[0].data) == EVENT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("e-1", "e-1"),
        ("  e-1 ", "e-1"),
        (42, "42"),
        ("", None),
        (None, None),
        ("x" * 600, "x" * 500),
    ],
)
def test_the_event_id_is_read_as_the_resolver_reads_it(value: object, expected: str | None) -> None:
    """Stripped, stringified, capped at 500; absent means the message id will stand in."""
    (event,) = parse_lines([line(event_id=value)]).events
    assert event.event_id == expected


def test_received_ordering_keys_by_the_client_id_as_sent() -> None:
    """received: the cookie form stays, and a missing client id gets key ""."""
    prefixed, missing = parse_lines(
        [line(client_id="GA1.1.123.456"), json.dumps({"event_name": "x"})],
        ordering_key="received",
    ).events
    assert prefixed.ordering_key == "GA1.1.123.456"
    assert prefixed.attributes == {"client_id": "GA1.1.123.456", "event_name": "page_view"}
    assert missing.ordering_key == ""
    assert missing.attributes == {"event_name": "x"}


def test_canonical_keys_strip_the_cookie_prefix_and_follow_a_linker_hop() -> None:
    """A checkout client that landed with _gl keeps the key of the client it carried."""
    landing = "https://pay.example/?_gl=" + encode_linker("123.456", AGENT, 1_763_800_000)
    events = parse_lines(
        [
            line(client_id="GA1.1.123.456"),
            line(client_id="999.888", page_location=landing),
            line(client_id="999.888", page_location="https://pay.example/done"),
            line(client_id="777.666"),
            line(client_id="undefined"),
        ],
        ordering_key="canonical",
    ).events
    assert [event.ordering_key for event in events] == [
        "123.456",
        "123.456",
        "123.456",
        "777.666",
        "undefined",
    ]
    assert events[1].attributes["client_id"] == "999.888"


def test_an_unknown_ordering_mode_is_refused() -> None:
    """A typo must not silently replay with another ordering."""
    with pytest.raises(ValueError, match="ordering_key"):
        parse_lines([line()], ordering_key="sorted")


def test_a_sent_line_takes_ids_and_session_from_the_request_body() -> None:
    """client_id, user_id and the first event's session parameters, plus the body itself."""
    body = {
        "client_id": "123.456",
        "user_id": "cust-1",
        "events": [
            {"name": "page_view", "params": {"session_id": 1763800154, "session_number": 3}}
        ],
    }
    assert sent_line("e-1", body) == {
        "event_id": "e-1",
        "client_id": "123.456",
        "user_id": "cust-1",
        "session_id": 1763800154,
        "session_number": 3,
        "request": body,
    }


def test_a_sent_line_of_a_cookieless_body_has_no_session() -> None:
    """No user, no session parameters: nulls, not a crash."""
    body = {"client_id": "1.2", "events": [{"name": "page_view", "params": {}}]}
    result = sent_line("e-1", body)
    assert (result["user_id"], result["session_id"], result["session_number"]) == (None, None, None)


def test_a_resolver_dead_letter_is_matched_by_its_message_id() -> None:
    """The raw message may not even be JSON: the message id is what ties it to a line."""
    body = {"reason": "not_json", "source": "resolve", "message_id": "m-7", "payload": "{oops"}
    assert dead_letter_event_id(body, {}, {"m-7": "e-7"}) == "e-7"


def test_a_forwarder_dead_letter_is_matched_by_the_enriched_event_id_attribute() -> None:
    """A truncated payload still carries the enriched message's event_id attribute."""
    body = {
        "reason": "ga4_invalid",
        "source": "forward",
        "message_id": "m-99",
        "attributes": {"event_id": "e-3", "client_id": "1.2"},
        "payload": '{"truncated',
    }
    assert dead_letter_event_id(body, {}, {}) == "e-3"


def test_a_dead_letter_written_by_pubsub_is_matched_by_its_payload() -> None:
    """After max delivery attempts Pub/Sub forwards the original message unchanged."""
    raw = {"client_id": "1.2", "event_id": "e-4"}
    enriched = {"client_id": "1.2", "event_id": "e-5", "resolved": {"event_id": "e-5"}}
    assert dead_letter_event_id(raw, {}, {}) == "e-4"
    assert dead_letter_event_id(enriched, {}, {}) == "e-5"
    assert dead_letter_event_id(None, {"event_id": "e-6"}, {}) == "e-6"


@pytest.mark.parametrize(
    ("share", "expected"), [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0), (1.0, 100.0), (0.0, 1.0)]
)
def test_percentiles_use_the_nearest_rank(share: float, expected: float) -> None:
    """1..100 in any order: p50 is 50, p95 is 95, p99 is 99."""
    values = [float(v) for v in reversed(range(1, 101))]
    assert percentile(values, share) == expected


def test_percentiles_of_few_or_no_values() -> None:
    """One value is every percentile; none gives None."""
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.5) == 1.0
    assert percentile([], 0.5) is None


def test_the_summary_names_every_figure() -> None:
    """Readable lines with reasons, rates and latency percentiles; JSON round trip."""
    summary = ReplaySummary(
        events_in=10,
        sent=8,
        dead_lettered=2,
        dead_lettered_by_reason={"missing_client_id": 2},
        throughput_per_second=12.5,
        latency_ms={"p50": 10.0, "p95": 20.0, "p99": None},
    )
    text = summary.format()
    assert "missing_client_id" in text
    assert "12.5 events/s" in text
    assert "latency p99" in text
    assert json.loads(json.dumps(summary.to_json()))["sent"] == 8


def test_duplicates_suppressed_never_goes_negative() -> None:
    """An event sent twice after one delivery (sent again after a crash) suppressed
    nothing, and does not cancel another event's suppressed duplicate."""
    deliveries = {"e-1": 1, "e-2": 2, "e-3": 3}
    requests = {"e-1": 2, "e-2": 1, "e-3": 1}
    logged = {"e-1": 1, "e-2": 1, "e-3": 1}
    assert duplicate_counts(deliveries, requests, logged) == (3, 1)
    assert duplicate_counts(deliveries, requests, {**logged, "e-1": 2}) == (3, 0)


def test_only_requests_no_log_accounts_for_are_the_crash_window() -> None:
    """Without a ledger each delivery of a duplicated event sends and logs: not a crash.
    A request whose delivery died before logging is one."""
    deliveries = {"e-1": 2, "e-2": 2}
    requests = {"e-1": 2, "e-2": 3}
    logged = {"e-1": 2, "e-2": 2}
    assert duplicate_counts(deliveries, requests, logged) == (0, 1)
    assert duplicate_counts(deliveries, requests, {}) == (0, 3)


def test_a_lost_pipeline_is_named_first_in_the_partial_summary() -> None:
    """The summary says it is partial, and why, before any figure."""
    text = ReplaySummary(sent=3, pipeline_lost="the pipeline's process 42 is gone").format()
    assert text.splitlines()[0].startswith("PARTIAL: pipeline lost")
    assert "process 42" in text.splitlines()[0]


class FakeSubscriber:
    """Pull and acknowledge, as the emulator answers them, over queued messages."""

    def __init__(self, queued: dict[str, list[object]], export: Path) -> None:
        self.queued = queued
        self.export = export
        self.acknowledged: list[tuple[str, list[str], int]] = []

    def pull(self, request: dict[str, object], timeout: float) -> SimpleNamespace:
        items = self.queued.pop(str(request["subscription"]), [])
        return SimpleNamespace(received_messages=items)

    def acknowledge(self, request: dict[str, object]) -> None:
        written = len((self.export / "enriched_events.ndjson").read_text().splitlines())
        self.acknowledged.append((str(request["subscription"]), list(request["ack_ids"]), written))


def pulled(ack_id: str, data: bytes, publish_time: datetime) -> SimpleNamespace:
    message = SimpleNamespace(
        data=data, message_id=f"m-{ack_id}", publish_time=publish_time, attributes={"k": "v"}
    )
    return SimpleNamespace(ack_id=ack_id, message=message)


def test_the_export_is_written_as_the_warehouse_reads_it_then_acknowledged(
    tmp_path: Path,
) -> None:
    """Rows in the BigQuery subscription's columns; a batch acknowledged once written;
    data that is not JSON left out (BigQuery refuses it)."""
    info = SimpleNamespace(
        project="p",
        subscriptions={"enriched_events": "e-pull", "identity_links": "l-pull"},
    )
    moment = datetime(2025, 11, 22, 8, 30, 1, 250000, tzinfo=UTC)
    enriched = "projects/p/subscriptions/e-pull"
    directory = tmp_path / "sent.ndjson.export"
    subscriber = FakeSubscriber(
        {enriched: [pulled("a", b'{"x": 1}', moment), pulled("b", b"not json", moment)]},
        directory,
    )
    export = _Export(info, subscriber, directory)  # type: ignore[arg-type]
    assert export.drain(rounds=5) == 2
    assert subscriber.acknowledged == [(enriched, ["a", "b"], 1)]
    assert (export.rows, export.refused) == ({"enriched_events": 1, "identity_links": 0}, 1)
    (row,) = [json.loads(line) for line in (directory / "enriched_events.ndjson").open()]
    assert row == {
        "subscription_name": "ga4-stitch-enriched-events-bigquery",
        "message_id": "m-a",
        "publish_time": "2025-11-22T08:30:01.250000Z",
        "data": '{"x": 1}',
        "attributes": {"k": "v"},
    }
    assert (directory / "identity_links.ndjson").read_text() == ""
    counts = warehouse.load_export(tmp_path / "w.duckdb", directory)
    assert counts == {"enriched_events": 1, "identity_links": 0}
