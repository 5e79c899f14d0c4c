"""The forward service with hand-written fakes of its own interfaces."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from shared.adapters.firestore.ledger import ledger_key
from shared.adapters.pubsub import LazyPublisher
from shared.domain.measurement import PayloadRules
from shared.domain.messages import OutgoingMessage
from shared.errors import PermanentError, SettingsError, TransientError
from shared.ports import Ga4OutcomeUnknown
from shared.services.forward import ForwardRuntime, NoLedger
from tests.fakes import FakePublisher

NOW = 1_763_800_154_000_000
HOUR = 3_600_000_000
TOPIC = "forward-dead-letter"


class FakeGa4:
    """``Ga4Sender``: records bodies; ``failures`` are raised first, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.event_ids: list[str | None] = []
        self.failures: list[Exception] = []
        self.remote_messages: list[dict[str, Any]] = []
        self.validated = 0

    def send(self, measurement_id: str, body: bytes, event_id: str | None = None) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((measurement_id, json.loads(body)))
        self.event_ids.append(event_id)

    def validate_remote(self, measurement_id: str, body: bytes) -> list[dict[str, Any]]:
        self.validated += 1
        return self.remote_messages


class FakeLedger:
    """``ForwardLedger`` in memory, with the Firestore adapter's create-once semantics.

    ``calls`` lists every ``delivered`` / ``record`` in order; ``fail_record`` makes the
    next writes fail (a count, or True for all of them); ``commit_then_fail`` makes the next
    write commit yet raise (its answer lost)."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_record: bool | int = False
        self.commit_then_fail = False

    def delivered(self, measurement_id: str, event_id: str) -> str | None:
        self.calls.append(("delivered", event_id))
        entry = self.entries.get(ledger_key(measurement_id, event_id))
        return None if entry is None else str(entry["state"])

    def record(self, measurement_id: str, event_id: str, state: str, now_micros: int) -> bool:
        self.calls.append(("record", event_id))
        if self.fail_record:
            if not isinstance(self.fail_record, bool):
                self.fail_record -= 1
            raise TransientError("Firestore unavailable")
        key = ledger_key(measurement_id, event_id)
        if key in self.entries:
            return False
        self.entries[key] = {"state": state, "at": now_micros}
        if self.commit_then_fail:
            self.commit_then_fail = False
            raise TransientError("deadline exceeded after the commit")
        return True


class World:
    def __init__(
        self,
        validate_first: bool = False,
        unknown_outcome: str = "assume_sent",
        ledger: Any = None,
    ) -> None:
        self.ga4 = FakeGa4()
        self.ledger = FakeLedger()
        self.publisher = FakePublisher()
        self.now = NOW
        self.runtime = ForwardRuntime(
            rules=PayloadRules(default_measurement_id="G-DEFAULT"),
            sender=self.ga4,
            ledger=self.ledger if ledger is None else ledger,
            publisher=self.publisher,
            dead_letter_topic=TOPIC,
            validate_first=validate_first,
            unknown_outcome=unknown_outcome,
            clock=lambda: self.now,
            sleep=lambda _: None,
        )

    def deliver(self, event: Any, message_id: str = "m-1") -> Any:
        raw = event if isinstance(event, bytes) else json.dumps(event).encode()
        data = {
            "message": {
                "data": base64.b64encode(raw).decode(),
                "messageId": message_id,
                "publishTime": "2025-11-22T08:29:14.000Z",
                "attributes": {"client_id": "1.2", "event_name": "page_view"},
            }
        }
        return self.runtime.handle(data, message_id)


@pytest.fixture
def world() -> World:
    return World()


def enriched(event_id: str = "e-1", **raw: Any) -> dict[str, Any]:
    resolved = {
        "event_id": event_id,
        "event_name": "page_view",
        "timestamp_micros": NOW - 1_000_000,
        "client_id": "1768696203.1712345678",
        "user_id": "cust-1",
        "session_id": 1_763_800_000,
        "session_number": 2,
        "consent": {},
    }
    resolved.update(raw.pop("resolved", {}))
    return {"page_location": "https://shop.example/", **raw, "resolved": resolved}


def test_an_enriched_event_is_sent_once_and_marked_sent(world: World) -> None:
    """One send with the built body; the ledger says sent."""
    outcome = world.deliver(enriched())
    assert outcome.status == "forwarded"
    ((measurement_id, body),) = world.ga4.sent
    assert measurement_id == "G-DEFAULT"
    assert body["client_id"] == "1768696203.1712345678"
    assert body["user_id"] == "cust-1"
    assert body["events"][0]["params"]["session_id"] == 1_763_800_000
    assert [entry["state"] for entry in world.ledger.entries.values()] == ["sent"]


def test_the_request_names_the_event_it_carries(world: World) -> None:
    """The sender is told the event id, so the request can carry it as a header."""
    world.deliver(enriched("e-77"))
    assert world.ga4.event_ids == ["e-77"]


def test_a_redelivered_event_is_not_sent_again(world: World) -> None:
    """Same event_id, even in another Pub/Sub message: duplicate suppressed, acknowledged."""
    world.deliver(enriched(), "m-1")
    outcome = world.deliver(enriched(), "m-2")
    assert outcome.status == "duplicate"
    assert len(world.ga4.sent) == 1


def test_a_transient_send_failure_writes_nothing_and_raises(world: World) -> None:
    """Pub/Sub redelivers, and the redelivery sends at once: nothing to release."""
    world.ga4.failures.append(TransientError("GA4 answered HTTP 503"))
    with pytest.raises(TransientError):
        world.deliver(enriched())
    assert world.ledger.entries == {}
    assert world.ledger.calls == [("delivered", "e-1")]
    assert world.deliver(enriched()).status == "forwarded"
    assert len(world.ga4.sent) == 1


def late_answer() -> Ga4OutcomeUnknown:
    return Ga4OutcomeUnknown("no answer from GA4 on /mp/collect; it may have taken the request")


def test_an_unknown_outcome_is_marked_uncertain_and_acknowledged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Assume sent: ledger uncertain, no raise, one WARNING."""
    caplog.set_level(logging.INFO, logger="ga4_stitch")
    world.ga4.failures.append(late_answer())
    outcome = world.deliver(enriched("e-late"))
    assert outcome.status == "uncertain"
    assert [entry["state"] for entry in world.ledger.entries.values()] == ["uncertain"]
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "ga4_outcome_unknown"]
    assert record.levelno == logging.WARNING
    assert record.event_id == "e-late"  # type: ignore[attr-defined]


def test_a_redelivery_of_an_uncertain_event_sends_nothing(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Uncertain counts as sent: every later delivery, any message id, is a duplicate."""
    caplog.set_level(logging.INFO, logger="ga4_stitch")
    world.ga4.failures.append(late_answer())
    world.deliver(enriched(), "m-1")
    world.now += 3_600_000_000
    assert world.deliver(enriched(), "m-1").status == "duplicate"
    assert world.deliver(enriched(), "m-2").status == "duplicate"
    assert world.ga4.sent == []
    states = [getattr(r, "ledger_state", None) for r in caplog.records]
    assert states.count("uncertain") == 2


def test_an_unknown_outcome_that_cannot_be_recorded_is_still_acknowledged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Raising would invite the redelivery that could duplicate it: logged instead."""
    world.ledger.fail_record = True
    world.ga4.failures.append(late_answer())
    assert world.deliver(enriched()).status == "uncertain"
    events = [getattr(r, "event", None) for r in caplog.records]
    assert "ledger_mark_failed" in events
    assert "ga4_outcome_unknown" in events


def test_the_resend_policy_records_nothing_and_lets_pubsub_redeliver(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """unknown_outcome=resend: the old trade (a duplicate if GA4 had taken it), but only
    one request per delivery; the unknown outcome is still logged."""
    world = World(unknown_outcome="resend")
    world.ga4.failures.append(late_answer())
    with pytest.raises(Ga4OutcomeUnknown):
        world.deliver(enriched())
    assert world.ledger.entries == {}
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("ga4_outcome_unknown_resent") == 1
    assert "ga4_outcome_unknown" not in events
    assert world.deliver(enriched()).status == "forwarded"
    assert len(world.ga4.sent) == 1


def test_an_unknown_policy_is_refused_at_start_up() -> None:
    """A typo must not silently pick a policy."""
    with pytest.raises(SettingsError, match="assume_sent, resend"):
        World(unknown_outcome="retry")


def test_nothing_is_written_before_the_send_and_one_entry_after(world: World) -> None:
    """The common case: one read, the send, one create; no claim before the send."""
    sent_before_record: list[int] = []
    record = world.ledger.record

    def watching(measurement_id: str, event_id: str, state: str, now_micros: int) -> bool:
        sent_before_record.append(len(world.ga4.sent))
        return record(measurement_id, event_id, state, now_micros)

    world.ledger.record = watching  # type: ignore[method-assign]
    world.deliver(enriched())
    assert world.ledger.calls == [("delivered", "e-1"), ("record", "e-1")]
    assert sent_before_record == [1]


def test_a_redelivery_after_a_crash_before_the_record_sends_again(world: World) -> None:
    """The crash window: GA4 took the request, the instance died before the write; the
    ledger has nothing, so the redelivery sends again (the duplicate every protocol has)."""
    world.ga4.sent.append(("G-DEFAULT", {"events": []}))  # the crashed delivery's request
    assert world.deliver(enriched(), "m-1").status == "forwarded"
    assert len(world.ga4.sent) == 2


def test_a_concurrent_copy_found_at_the_record_is_logged_as_a_duplicate_risk(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Another delivery recorded the event between this one's read and its write: GA4 may
    have it twice. Acknowledged, the entry left as it was, ``duplicate_risk`` logged."""
    world.ledger.entries[ledger_key("G-DEFAULT", "e-1")] = {"state": "sent", "at": NOW}
    delivered = world.ledger.delivered
    world.ledger.delivered = lambda m, e: (delivered(m, e), None)[1]  # type: ignore[method-assign]
    assert world.deliver(enriched()).status == "forwarded"
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "duplicate_risk"]
    assert record.levelno == logging.WARNING
    assert record.event_id == "e-1"  # type: ignore[attr-defined]
    assert list(world.ledger.entries.values()) == [{"state": "sent", "at": NOW}]


def test_a_retried_write_that_finds_its_own_entry_is_no_duplicate_risk(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The first create committed but its answer was lost: the retry finds the entry."""
    caplog.set_level(logging.INFO, logger="ga4_stitch")
    world.ledger.commit_then_fail = True
    assert world.deliver(enriched()).status == "forwarded"
    events = [getattr(r, "event", None) for r in caplog.records]
    assert "duplicate_risk" not in events
    assert "ledger_write_retried" in events


def test_a_write_that_fails_once_is_retried(world: World) -> None:
    world.ledger.fail_record = 1
    assert world.deliver(enriched()).status == "forwarded"
    assert [entry["state"] for entry in world.ledger.entries.values()] == ["sent"]


def test_a_firestore_outage_before_the_send_sends_nothing_and_raises(world: World) -> None:
    """The ledger cannot be read: Pub/Sub redelivers; GA4 gets nothing yet."""

    def unavailable(measurement_id: str, event_id: str) -> str | None:
        raise TransientError("Firestore unavailable")

    world.ledger.delivered = unavailable  # type: ignore[method-assign]
    with pytest.raises(TransientError):
        world.deliver(enriched())
    assert world.ga4.sent == []


def test_without_a_ledger_every_delivery_is_sent() -> None:
    """FORWARD_LEDGER=none: at least once; a redelivery of a sent event is sent again."""
    world = World(ledger=NoLedger())
    assert world.deliver(enriched(), "m-1").status == "forwarded"
    assert world.deliver(enriched(), "m-2").status == "forwarded"
    assert len(world.ga4.sent) == 2
    assert world.ledger.calls == []


def test_a_ga4_rejection_is_dead_lettered_and_nothing_recorded(world: World) -> None:
    """A 4xx is permanent: dead-letter ga4_rejected, acknowledge, leave no entry."""
    world.ga4.failures.append(PermanentError("ga4_rejected", "GA4 answered HTTP 400"))
    outcome = world.deliver(enriched())
    assert (outcome.status, outcome.reason) == ("dead_lettered", "ga4_rejected")
    assert world.ledger.entries == {}
    assert world.publisher.messages[0].attributes["reason"] == "ga4_rejected"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not_json"),
        ([1, 2], "not_an_object"),
        ({"event_name": "page_view"}, "bad_enriched_event"),
        ({"resolved": {"event_id": "e"}}, "bad_enriched_event"),
    ],
)
def test_a_message_that_is_not_an_enriched_event_is_dead_lettered(
    world: World, payload: Any, reason: str
) -> None:
    """Dead letter with the reason and the original payload; nothing sent, nothing claimed."""
    outcome = world.deliver(payload)
    assert outcome.reason == reason
    (letter,) = world.publisher.dead_letters()
    assert letter["reason"] == reason
    assert letter["source"] == "forward"
    assert letter["message_id"] == "m-1"
    assert world.publisher.messages[0].topic == TOPIC
    assert world.ga4.sent == []
    assert world.ledger.entries == {}


def test_cloud_event_data_without_a_pubsub_message_is_dead_lettered(world: World) -> None:
    """Not a Pub/Sub CloudEvent at all: not_pubsub."""
    outcome = world.runtime.handle({"unexpected": True}, "ce-1")
    assert outcome.reason == "not_pubsub"
    assert world.publisher.dead_letters()[0]["message_id"] == "ce-1"


def test_an_event_older_than_72_hours_is_dead_lettered_not_sent(world: World) -> None:
    """GA4 would clamp its time: too_old_for_ga4."""
    outcome = world.deliver(enriched(resolved={"timestamp_micros": NOW - 73 * HOUR}))
    assert outcome.reason == "too_old_for_ga4"
    assert world.ga4.sent == []
    assert world.ledger.entries == {}
    assert world.deliver(
        enriched("e-2", resolved={"timestamp_micros": NOW - 71 * HOUR})
    ).status == ("forwarded")


def test_an_event_ga4_would_drop_is_dead_lettered_with_the_validation_messages(
    world: World,
) -> None:
    """A reserved event name cannot be repaired: ga4_invalid with GA4-shaped messages."""
    outcome = world.deliver(enriched(resolved={"event_name": "session_start"}))
    assert outcome.reason == "ga4_invalid"
    (letter,) = world.publisher.dead_letters()
    assert json.loads(letter["detail"]) == [
        {
            "fieldPath": "events",
            "description": "Event at index: [0] has invalid name [session_start]. "
            "The name is reserved by Google Analytics.",
            "validationCode": "NAME_RESERVED",
        }
    ]
    assert world.ga4.sent == []


def test_a_pii_user_id_is_never_sent(world: World) -> None:
    """An email in user_id (the resolver failed to hash it) is dead-lettered, not leaked."""
    outcome = world.deliver(enriched(resolved={"user_id": "jane@example.com"}))
    assert outcome.reason == "ga4_invalid"
    assert world.ga4.sent == []


def test_a_repairable_event_is_sent_repaired_and_the_repair_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A too-long value is truncated, a bad parameter dropped, and the event still sent."""
    caplog.set_level(logging.INFO, logger="ga4_stitch")
    world.deliver(enriched(plan="p" * 150, **{"bad-name": 1}))
    params = world.ga4.sent[0][1]["events"][0]["params"]
    assert params["plan"] == "p" * 100
    assert "bad-name" not in params
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "ga4_repaired"]
    assert len(record.messages) == 2  # type: ignore[attr-defined]


def test_validate_first_dead_letters_on_remote_messages() -> None:
    """With validate_first, GA4's debug answer decides before anything is sent."""
    world = World(validate_first=True)
    world.ga4.remote_messages = [
        {"fieldPath": "events", "description": "x", "validationCode": "VALUE_INVALID"}
    ]
    assert world.deliver(enriched()).reason == "ga4_invalid"
    assert world.ga4.sent == []
    world.ga4.remote_messages = []
    assert world.deliver(enriched("e-2")).status == "forwarded"
    assert world.ga4.validated == 2


def test_failing_to_record_sent_still_acknowledges(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """GA4 has the event: raising would invite a duplicate, so it is logged and acknowledged."""
    world.ledger.fail_record = True
    assert world.deliver(enriched()).status == "forwarded"
    assert any(getattr(r, "event", None) == "ledger_mark_failed" for r in caplog.records)


def test_a_dead_letter_that_cannot_be_published_is_retried(world: World) -> None:
    """Never drop silently: if the dead letter fails, raise so Pub/Sub redelivers."""
    world.publisher.fail = True
    with pytest.raises(TransientError):
        world.deliver(b"not json")


def test_outcomes_are_logged_with_stable_fields(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """forwarded, duplicate_suppressed and dead_lettered carry event and reason fields."""
    caplog.set_level(logging.INFO, logger="ga4_stitch")
    world.deliver(enriched())
    world.deliver(enriched())
    world.deliver(b"nope")
    events = [(getattr(r, "event", None), getattr(r, "reason", None)) for r in caplog.records]
    assert events == [
        ("forwarded", None),
        ("duplicate_suppressed", None),
        ("dead_lettered", "not_json"),
    ]


def test_the_lazy_publisher_builds_its_publisher_once_on_first_use() -> None:
    """No Pub/Sub client until something is dead-lettered."""
    built: list[FakePublisher] = []

    def factory() -> FakePublisher:
        built.append(FakePublisher())
        return built[-1]

    lazy = LazyPublisher(factory)
    assert built == []
    message = OutgoingMessage(topic=TOPIC, data=b"x")
    lazy.publish_all([message])
    lazy.publish_all([message])
    assert len(built) == 1
    assert built[0].messages == [message, message]
