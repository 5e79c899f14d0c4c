"""``ga4_stitch.redrive``: both dead-letter shapes decoded, the filters, and a run's
acknowledgements against an in-memory bus (the emulator run is in tests/integration)."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from ga4_stitch import cli
from ga4_stitch.redrive import (
    EXHAUSTED_REASON,
    FAILED,
    LEFT,
    REPUBLISHED,
    SKIPPED,
    WOULD_REPUBLISH,
    DeadLetter,
    Filters,
    Received,
    RedriveSetupError,
    Republication,
    Route,
    parse_dead_letter,
    redrive,
    routes_for,
    target_for,
)
from shared.domain.messages import PubSubMessage, dead_letter_message
from shared.errors import InvalidEvent, PermanentError
from shared.settings import Topics

DEAD_AT = 1_763_800_000_000_000
"""2025-11-22T08:26:40Z"""
RAW = {
    "client_id": "GA1.1.1768696203.1712345678",
    "event_name": "page_view",
    "event_id": "e-1",
    "timestamp_micros": DEAD_AT - 60_000_000,
}


def envelope(
    reason: str,
    payload: bytes,
    source: str = "resolve",
    attributes: dict[str, str] | None = None,
    *,
    message_id: str = "m-1",
    now: int = DEAD_AT,
    ack_id: str = "a-1",
) -> Received:
    """A dead letter exactly as a function writes it, as pulled from its subscription."""
    original = PubSubMessage(
        payload,
        message_id,
        DEAD_AT - 1_000_000,
        attributes if attributes is not None else {"client_id": RAW["client_id"]},
    )
    error = InvalidEvent(reason, "why") if reason.startswith("missing") else None
    out = dead_letter_message("dead", error or PermanentError(reason, "why"), original, source, now)
    return Received(ack_id, f"dl-{message_id}", out.data, dict(out.attributes), now + 10)


def from_pubsub(data: bytes, attributes: dict[str, str], ordering_key: str = "") -> Received:
    """A message Pub/Sub dead-lettered after max delivery attempts: the original, unchanged,
    plus its bookkeeping attributes."""
    bookkeeping = {
        "CloudPubSubDeadLetterSourceDeliveryCount": "10",
        "CloudPubSubDeadLetterSourceSubscription": "ga4-stitch-forward",
        "CloudPubSubDeadLetterSourceSubscriptionProject": "demo-ga4-stitch",
        "CloudPubSubDeadLetterSourceTopicPublishTime": "2025-11-22T08:26:39.5Z",
    }
    return Received("a-p", "dl-p", data, {**attributes, **bookkeeping}, DEAD_AT, ordering_key)


# --------------------------------------------------------------------------- shapes


def test_an_envelope_gives_back_the_original_bytes_attributes_and_ordering_key() -> None:
    payload = json.dumps(RAW, separators=(",", ":")).encode()
    attributes = {"client_id": RAW["client_id"], "event_name": "page_view"}
    letter = parse_dead_letter("resolve", envelope("too_late", payload, attributes=attributes))
    assert letter.shape == "envelope"
    assert letter.reason == "too_late"
    assert letter.detail == "why"
    assert letter.payload == payload
    assert letter.attributes == attributes
    assert letter.ordering_key == "1768696203.1712345678"  # canonical, as the GTM tag keys it
    assert letter.message_id == "m-1"
    assert letter.event_id == "e-1"
    assert letter.dead_lettered_micros == DEAD_AT
    assert letter.original_publish_micros == DEAD_AT - 1_000_000
    assert (letter.problem, letter.notes, letter.permanent) == (None, (), False)


def test_a_forward_envelope_keys_by_the_enriched_client_and_names_the_event() -> None:
    enriched = {**RAW, "resolved": {"event_id": "e-9", "client_id": "111.222"}}
    attributes = {"client_id": "111.222", "event_name": "page_view", "event_id": "e-9"}
    received = envelope("ga4_invalid", json.dumps(enriched).encode(), "forward", attributes)
    letter = parse_dead_letter("forward", received)
    assert letter.ordering_key == "111.222"
    assert letter.event_id == "e-9"
    assert letter.attributes == attributes
    assert not {"reason", "source", "message_id"} & letter.attributes.keys()


def test_pubsubs_own_dead_letter_is_the_original_message_without_its_bookkeeping() -> None:
    data = json.dumps({"resolved": {"event_id": "e-5", "client_id": "333.444"}}).encode()
    attributes = {"client_id": "333.444", "event_name": "purchase", "event_id": "e-5"}
    letter = parse_dead_letter("forward", from_pubsub(data, attributes))
    assert letter.shape == "pubsub"
    assert letter.reason == EXHAUSTED_REASON
    assert letter.payload == data
    assert letter.attributes == attributes
    assert letter.ordering_key == "333.444"
    assert letter.event_id == "e-5"
    assert letter.dead_lettered_micros == DEAD_AT
    assert letter.original_publish_micros == DEAD_AT - 500_000
    assert letter.detail == "10 delivery attempts on ga4-stitch-forward"
    assert not letter.permanent


def test_pubsubs_attributes_decide_even_when_the_payload_looks_like_an_envelope() -> None:
    """A raw event is any JSON; one with ``reason`` and ``payload`` keys stays an original."""
    data = json.dumps({**RAW, "reason": "x", "payload": "y"}).encode()
    letter = parse_dead_letter("resolve", from_pubsub(data, {}, ordering_key="k-1"))
    assert (letter.shape, letter.payload, letter.ordering_key) == ("pubsub", data, "k-1")


def test_a_raw_payload_without_id_or_time_is_flagged() -> None:
    payload = json.dumps({"client_id": "1.2", "event_name": "x"}).encode()
    letter = parse_dead_letter("resolve", envelope("firestore_rejected", payload))
    assert len(letter.notes) == 2
    assert "event_id" in letter.notes[0]
    assert "time" in letter.notes[1]


@pytest.mark.parametrize(
    ("received", "problem"),
    [
        (envelope("too_late", b"{" + b'"a":"' + b"x" * 12_000 + b'"}'), "cut at 10000 bytes"),
        (envelope("too_late", json.dumps(RAW).encode(), "forward"), "names source 'forward'"),
        (Received("a", "m", b"hello", {"client_id": "1.2"}, DEAD_AT), "neither"),
    ],
    ids=["truncated", "wrong-topic", "unknown-shape"],
)
def test_what_cannot_be_restored_exactly_says_why(received: Received, problem: str) -> None:
    letter = parse_dead_letter("resolve", received)
    assert letter.problem is not None
    assert problem in letter.problem
    assert Filters(include_permanent=True).skip_reason(letter) is not None


def test_a_client_id_that_does_not_normalise_is_kept_as_the_key() -> None:
    received = envelope("too_late", json.dumps(RAW).encode(), attributes={"client_id": " odd "})
    assert parse_dead_letter("resolve", received).ordering_key == "odd"
    no_id = envelope("missing_client_id", b"{}", attributes={})
    assert parse_dead_letter("resolve", no_id).ordering_key == ""


# --------------------------------------------------------------------------- filters


def letter_at(reason: str, micros: int | None) -> DeadLetter:
    return DeadLetter("resolve", "envelope", reason, None, "m", micros, None, b"{}", {}, "", None)


def test_filters_match_reason_and_a_half_open_time_range() -> None:
    window = Filters(reasons=frozenset({"too_late"}), since_micros=100, until_micros=200)
    assert window.matches(letter_at("too_late", 100))
    assert window.matches(letter_at("too_late", 199))
    assert not window.matches(letter_at("too_late", 200))
    assert not window.matches(letter_at("too_late", 99))
    assert not window.matches(letter_at("too_late", None))
    assert not window.matches(letter_at("ga4_invalid", 150))
    assert Filters().matches(letter_at("anything", None))


@pytest.mark.parametrize(
    "reason", ["missing_client_id", "not_json", "not_pubsub", "bad_enriched_event"]
)
def test_permanent_reasons_are_skipped_unless_included(reason: str) -> None:
    letter = letter_at(reason, DEAD_AT)
    assert letter.permanent
    assert "permanent" in (Filters().skip_reason(letter) or "")
    assert Filters(include_permanent=True).skip_reason(letter) is None


@pytest.mark.parametrize("reason", ["too_late", "ga4_invalid", EXHAUSTED_REASON])
def test_reasons_a_fix_can_cure_are_published(reason: str) -> None:
    assert Filters().skip_reason(letter_at(reason, DEAD_AT)) is None


# --------------------------------------------------------------------------- a run


class FakeBus:
    """One subscription's backlog with leases, and a publisher that can refuse payloads."""

    def __init__(self, messages: Sequence[Received]) -> None:
        self.backlog = {m.message_id: m for m in messages}
        self.leased: dict[str, str] = {}  # ack id -> message id
        self.published: list[Republication] = []
        self.acked: list[str] = []
        self.refuse: set[bytes] = set()
        self.ack_error: str | None = None
        self.redeliveries = 0
        self._ack_ids = itertools.count()

    def pull(self, subscription: str, max_messages: int) -> list[Received]:
        leased = set(self.leased.values())
        out = []
        for message in list(self.backlog.values())[:max_messages]:
            if message.message_id in leased:
                if not self.redeliveries:
                    continue
                self.redeliveries -= 1
            ack_id = f"ack-{next(self._ack_ids)}"
            self.leased[ack_id] = message.message_id
            out.append(dataclasses.replace(message, ack_id=ack_id))
        return out

    def hold(self, subscription: str, ack_ids: Sequence[str], seconds: int) -> None:
        assert seconds > 0

    def release(self, subscription: str, ack_ids: Sequence[str]) -> None:
        for ack_id in ack_ids:
            self.leased.pop(ack_id, None)

    def acknowledge(self, subscription: str, ack_ids: Sequence[str]) -> str | None:
        if self.ack_error:
            return self.ack_error
        for ack_id in ack_ids:
            message_id = self.leased.pop(ack_id)
            self.backlog.pop(message_id, None)
            self.acked.append(message_id)
        return None

    def publish(self, messages: Sequence[Republication]) -> list[str | None]:
        results: list[str | None] = []
        for message in messages:
            if message.data in self.refuse:
                results.append("NotFound: 404 topic")
            else:
                self.published.append(message)
                results.append(None)
        return results


ROUTE = Route("resolve", "raw-dead-pull", "raw")


def raw(event_id: str, reason: str = "too_late", minute: int = 0) -> Received:
    payload = json.dumps({**RAW, "event_id": event_id}).encode()
    return envelope(
        reason, payload, message_id=event_id, now=DEAD_AT + minute * 60_000_000, ack_id=""
    )


def run(bus: FakeBus, filters: Filters | None = None, mode: str = "redrive") -> Any:
    return redrive(bus, [ROUTE], filters or Filters(), mode, pause_seconds=0)


def test_published_dead_letters_are_acknowledged_and_the_rest_stay() -> None:
    bus = FakeBus([raw("e-1"), raw("e-2"), raw("e-3", "missing_client_id")])
    report = run(bus)
    assert sorted(m.data for m in bus.published) == sorted(
        json.dumps({**RAW, "event_id": e}).encode() for e in ("e-1", "e-2")
    )
    assert {m.topic for m in bus.published} == {"raw"}
    assert {m.ordering_key for m in bus.published} == {"1768696203.1712345678"}
    assert sorted(bus.acked) == ["dl-e-1", "dl-e-2"]
    assert list(bus.backlog) == ["dl-e-3"]
    assert bus.leased == {}, "what was not published is released at once"
    assert report.counts == {REPUBLISHED: 2, SKIPPED: 1, LEFT: 0, FAILED: 0}
    assert report.ok
    assert "missing_client_id 1" in report.summary()
    again = run(bus)
    assert again.counts == {REPUBLISHED: 0, SKIPPED: 1, LEFT: 0, FAILED: 0}
    assert len(bus.published) == 2


def test_a_failed_publish_leaves_its_dead_letter_and_fails_the_run() -> None:
    messages = [raw("e-1"), raw("e-2")]
    bus = FakeBus(messages)
    bus.refuse.add(json.dumps({**RAW, "event_id": "e-2"}).encode())
    report = run(bus)
    assert bus.acked == ["dl-e-1"]
    assert list(bus.backlog) == ["dl-e-2"]
    assert bus.leased == {}
    assert report.counts[FAILED] == 1
    assert not report.ok
    (failed,) = [item for item in report.handled if item.action == FAILED]
    assert "NotFound" in (failed.note or "")


def test_a_lost_acknowledgement_fails_the_run_but_counts_as_published() -> None:
    bus = FakeBus([raw("e-1")])
    bus.ack_error = "Unavailable"
    report = run(bus)
    assert len(bus.published) == 1
    assert report.counts[REPUBLISHED] == 1
    assert report.acknowledgement_failures == 1
    assert not report.ok
    assert "not acknowledged" in report.summary()


def test_a_dry_run_and_a_listing_change_nothing() -> None:
    bus = FakeBus([raw("e-1"), raw("e-2", minute=5), raw("e-3", "missing_client_id")])
    dry = run(bus, mode="dry_run")
    assert dry.counts == {WOULD_REPUBLISH: 2, SKIPPED: 1, LEFT: 0, FAILED: 0}
    listing = run(bus, mode="list")
    assert (bus.published, bus.acked, bus.leased) == ([], [], {})
    assert len(bus.backlog) == 3
    assert listing.groups() == [
        {
            "source": "resolve",
            "reason": "missing_client_id",
            "count": 1,
            "permanent": True,
            "first": "2025-11-22T08:26:40Z",
            "last": "2025-11-22T08:26:40Z",
        },
        {
            "source": "resolve",
            "reason": "too_late",
            "count": 2,
            "permanent": False,
            "first": "2025-11-22T08:26:40Z",
            "last": "2025-11-22T08:31:40Z",
        },
    ]
    text = listing.listing()
    assert "missing_client_id (permanent)" in text
    assert "total 3, 2025-11-22T08:26:40Z .. 2025-11-22T08:31:40Z" in text
    lines = dry.lines(all_messages=False)
    assert len(lines) == 3
    assert any(line.startswith(WOULD_REPUBLISH) and "-> raw key" in line for line in lines)


def test_filters_and_the_limit_leave_the_others_in_place() -> None:
    bus = FakeBus([raw(f"e-{n}", minute=n) for n in range(5)] + [raw("x", "ga4_invalid")])
    since = DEAD_AT + 60_000_000
    report = run(bus, Filters(reasons=frozenset({"too_late"}), since_micros=since, limit=2))
    assert report.counts[REPUBLISHED] == 2
    assert sorted(bus.acked) == ["dl-e-1", "dl-e-2"], "oldest first within the batch read"
    assert len(bus.backlog) == 4
    assert bus.leased == {}
    notes = Counter(item.note for item in report.handled if item.action == LEFT)
    assert notes == {"does not match the filters": 2, "past --limit": 2}


def test_a_redelivered_copy_is_handled_once() -> None:
    """A lease that ran out during a long run hands a message out again: one publication."""
    bus = FakeBus([raw("e-1")])
    bus.redeliveries = 1
    report = run(bus)
    assert bus.redeliveries == 0, "the copy was handed out"
    assert len(bus.published) == 1
    assert bus.acked == ["dl-e-1"]
    assert report.counts[REPUBLISHED] == 1


def test_publications_are_ordered_by_original_publish_time() -> None:
    late, early = raw("e-late"), raw("e-early")
    body = json.loads(early.data)
    body["publish_time_micros"] -= 10_000_000
    early = Received("", early.message_id, json.dumps(body).encode(), early.attributes, DEAD_AT)
    bus = FakeBus([late, early])
    run(bus)
    assert [json.loads(m.data)["event_id"] for m in bus.published] == ["e-early", "e-late"]


# --------------------------------------------------------------------------- where to


def test_routes_follow_the_topic_settings() -> None:
    topics = Topics(
        raw_events="r", enriched="e", resolve_dead_letter="rd", forward_dead_letter="fd"
    )
    assert routes_for(topics) == [
        Route("resolve", "rd-pull", "r"),
        Route("forward", "fd-pull", "e"),
    ]


def test_the_target_is_the_emulator_else_a_real_project_else_an_error() -> None:
    emulator = target_for(None, {"PUBSUB_EMULATOR_HOST": "127.0.0.1:1", "RAW_EVENTS_TOPIC": "r"})
    assert (emulator.project, emulator.pubsub_host) == ("demo-ga4-stitch", "127.0.0.1:1")
    assert emulator.topics.raw_events == "r"
    real = target_for(None, {"GOOGLE_CLOUD_PROJECT": "acme"})
    assert (real.project, real.pubsub_host, real.topics) == ("acme", None, Topics())
    with pytest.raises(RedriveSetupError, match="PUBSUB_EMULATOR_HOST"):
        target_for(None, {})


def test_the_command_without_a_place_to_work_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "GCP_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["redrive", "--dry-run", "--state-dir", str(tmp_path)]) == 2
    assert "neither PUBSUB_EMULATOR_HOST" in capsys.readouterr().err
    since_after_until = ["redrive", "--since", "2025-01-02", "--until", "2025-01-01"]
    assert cli.main([*since_after_until, "--state-dir", str(tmp_path)]) == 2
