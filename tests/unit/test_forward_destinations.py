"""The forward service with a Data Manager stream: same ledger and dead letters, the
API's own reasons, and the destination in every log line."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from shared.bootstrap import destination_plan, payload_rules
from shared.domain.datamanager import DataManagerDestination, DestinationPlan
from shared.domain.measurement import PayloadRules
from shared.errors import SettingsError
from shared.services.forward import ForwardRuntime
from shared.settings import Settings
from tests.fakes import FakePublisher
from tests.unit.test_datamanager_mapping import NOW, enriched
from tests.unit.test_forward_service import FakeGa4, FakeLedger, World

PLAN = DestinationPlan(
    default="data_manager",
    data_manager={"G-SHOP": DataManagerDestination("123456789", "G-SHOP")},
    measurement_ids=frozenset({"G-SHOP"}),
)


def runtime(ga4: FakeGa4, ledger: FakeLedger, publisher: FakePublisher) -> ForwardRuntime:
    return ForwardRuntime(
        rules=PayloadRules(default_measurement_id="G-SHOP"),
        sender=ga4,
        ledger=ledger,
        publisher=publisher,
        dead_letter_topic="dl",
        validate_first=True,
        clock=lambda: NOW,
        sleep=lambda _: None,
        destinations=PLAN,
    )


def deliver(forward: ForwardRuntime, event: dict[str, Any]) -> Any:
    world = World.__new__(World)
    world.runtime = forward
    return World.deliver(world, event)


def test_a_data_manager_event_is_sent_once_and_recorded_without_validating_first() -> None:
    """Sent, ledger entry written, no validate round trip; a redelivery is suppressed."""
    ga4, ledger, publisher = FakeGa4(), FakeLedger(), FakePublisher()
    forward = runtime(ga4, ledger, publisher)
    assert deliver(forward, enriched()).status == "forwarded"
    assert deliver(forward, enriched()).status == "duplicate"
    assert len(ga4.sent) == 1
    assert ga4.validated == 0


def test_an_event_the_api_would_refuse_is_dead_lettered_with_its_reason() -> None:
    """A currency the API refuses (MP would take it) is dead-lettered before any request."""
    ga4, ledger, publisher = FakeGa4(), FakeLedger(), FakePublisher()
    forward = runtime(ga4, ledger, publisher)
    event = enriched()
    event["currency"] = "euro"
    outcome = deliver(forward, event)
    assert outcome.status == "dead_lettered"
    assert outcome.reason == "data_manager_invalid_currency_code"
    assert ga4.sent == []
    assert ledger.entries == {}


def test_logs_name_the_destination(caplog: pytest.LogCaptureFixture) -> None:
    """Every forward log line carries destination=data_manager for this stream."""
    caplog.set_level(logging.INFO, logger="ga4_stitch.forward")
    forward = runtime(FakeGa4(), FakeLedger(), FakePublisher())
    deliver(forward, enriched())
    lines = [r for r in caplog.records if getattr(r, "event", None) == "forwarded"]
    assert lines
    assert all(getattr(r, "destination", None) == "data_manager" for r in lines)


ENV = {"GOOGLE_CLOUD_PROJECT": "p", "GA4_MEASUREMENT_ID": "G-A"}


def test_a_data_manager_stream_without_a_property_id_fails_at_start() -> None:
    """GA4_DESTINATION=data_manager without GA4_PROPERTY_ID: SettingsError, not per event."""
    settings = Settings.from_env(ENV | {"GA4_DESTINATION": "data_manager"})
    with pytest.raises(SettingsError, match="G-A"):
        destination_plan(settings, payload_rules(settings))


def test_a_routed_stream_takes_its_own_property_and_destination() -> None:
    """GA4_STREAM_ROUTES + GA4_STREAM_DESTINATIONS + GA4_STREAM_PROPERTIES per stream."""
    settings = Settings.from_env(
        ENV
        | {
            "GA4_STREAM_ROUTES": json.dumps({"shop.example.com": "G-SHOP"}),
            "GA4_STREAM_DESTINATIONS": json.dumps({"G-SHOP": "data_manager"}),
            "GA4_STREAM_PROPERTIES": json.dumps({"G-SHOP": "42"}),
        }
    )
    plan = destination_plan(settings, payload_rules(settings))
    assert plan.destination_of("G-A") == "measurement_protocol"
    assert plan.data_manager_for("G-SHOP").property_id == "42"
