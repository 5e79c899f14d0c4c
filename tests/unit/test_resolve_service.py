"""The resolve service with fakes of its own interfaces: ordering of effects and error paths."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from shared.bootstrap import resolve_config
from shared.domain.crossdomain.tokens import mint_link_token
from shared.errors import ConcurrentUpdate, TransientError
from shared.services.resolve import ResolveRuntime
from shared.settings import PrivacySettings, Settings
from tests.fakes import FakeLinkEvidence, FakePublisher, FakeStateStore

NOW = 1_763_800_000_000_000
SETTINGS = Settings(project="demo-test")


def cloud_event(payload: dict[str, Any] | bytes, message_id: str = "m1") -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "messageId": message_id,
            "publishTime": "2025-11-22T08:00:00Z",
        }
    }


def runtime() -> tuple[ResolveRuntime, FakeStateStore, FakePublisher]:
    store, publisher = FakeStateStore(), FakePublisher()
    return (
        ResolveRuntime(
            resolve_config(SETTINGS), store, publisher, clock=lambda: NOW, sleep=lambda _: None
        ),
        store,
        publisher,
    )


def raw(event_id: str, minutes_ago: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": "1.2",
        "event_name": "page_view",
        "event_id": event_id,
        "timestamp_micros": NOW - minutes_ago * 60_000_000,
        **extra,
    }


def test_a_publish_failure_raises_and_the_redelivery_publishes_the_same_answer():
    """State commits first; a failed publish is retried by redelivery with an identical result."""
    service, store, publisher = runtime()
    publisher.failures = 1
    with pytest.raises(TransientError):
        service.handle(cloud_event(raw("e1")))
    assert store.saves == 1
    outcome = service.handle(cloud_event(raw("e1")))
    assert outcome.status == "duplicate"
    [enriched] = publisher.on(SETTINGS.topics.enriched)
    assert enriched["resolved"]["session_number"] == 1
    assert enriched["resolved"]["duplicate"] is True
    assert store.saves == 1


def test_a_concurrent_writer_makes_the_service_decide_again_on_fresh_state():
    """ConcurrentUpdate is retried in place: the event is resolved once, nothing raised."""
    service, store, publisher = runtime()
    store.conflicts_to_raise = 2
    assert service.handle(cloud_event(raw("e1"))).status == "resolved"
    assert store.saves == 1
    assert len(publisher.on(SETTINGS.topics.enriched)) == 1


def test_a_retry_is_logged_once_naming_the_event_and_its_client(
    caplog: pytest.LogCaptureFixture,
):
    """One conflict: one ``retrying`` line for attempt 1 with the event's ids."""
    caplog.set_level(logging.WARNING, logger="ga4_stitch")
    service, store, _ = runtime()
    store.conflicts_to_raise = 1
    assert service.handle(cloud_event(raw("e1"))).status == "resolved"
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "retrying"]
    assert (line.attempt, line.event_id, line.client_id) == (1, "e1", "1.2")


def test_endless_contention_is_raised_so_pub_sub_redelivers():
    """When retries run out the transient error propagates (HTTP 500, redelivery)."""
    service, store, _ = runtime()
    store.conflicts_to_raise = 100
    with pytest.raises(ConcurrentUpdate):
        service.handle(cloud_event(raw("e1")))


def test_permanent_errors_are_dead_lettered_with_reason_and_original_payload():
    """A bad event is published to the dead-letter topic and acknowledged, state untouched."""
    service, store, publisher = runtime()
    outcome = service.handle(cloud_event(b'{"client_id": "1.2"}', "m-bad"))
    assert (outcome.status, outcome.reason) == ("dead_lettered", "missing_event_name")
    [letter] = publisher.on(SETTINGS.topics.resolve_dead_letter)
    assert letter["payload"] == '{"client_id": "1.2"}'
    assert letter["message_id"] == "m-bad"
    assert store.saves == 0


def test_an_envelope_that_is_not_pub_sub_is_dead_lettered_too():
    """Even a CloudEvent without a Pub/Sub message is kept, with its reason."""
    service, _, publisher = runtime()
    assert service.handle({"unexpected": True}, "ce-1").reason == "not_pubsub"
    [letter] = publisher.on(SETTINGS.topics.resolve_dead_letter)
    assert json.loads(letter["payload"]) == {"unexpected": True}


def test_a_new_link_is_published_once_and_written_to_the_user_document():
    """The first login of a user on a client publishes one identity link and one user write."""
    service, store, publisher = runtime()
    service.handle(cloud_event(raw("e1", 3, user_id="cust-1")))
    service.handle(cloud_event(raw("e2", 2, user_id="cust-1")))
    service.handle(cloud_event(raw("e3", 1)))
    links = publisher.on(SETTINGS.topics.identity_links)
    assert [(link["client_id"], link["user_id"]) for link in links] == [("1.2", "cust-1")]
    assert [link.user_id for link in store.links] == ["cust-1"]
    assert publisher.on(SETTINGS.topics.enriched)[2]["resolved"]["identity_source"] == "stitched"


def test_consent_denied_events_are_published_without_touching_state():
    """analytics_storage denied: no load, no save, no user id, still forwarded."""
    service, store, publisher = runtime()
    outcome = service.handle(
        cloud_event(raw("e1", user_id="u", consent={"analytics_storage": "denied"}))
    )
    assert outcome.status == "cookieless"
    assert store.saves == 0
    [enriched] = publisher.on(SETTINGS.topics.enriched)
    assert enriched["resolved"]["user_id"] is None
    assert enriched["resolved"]["session_id"] is None


def linking_runtime() -> tuple[ResolveRuntime, FakeStateStore, FakePublisher]:
    settings = Settings(project="demo-test", privacy=PrivacySettings(link_token_secret="s" * 32))
    store, publisher = FakeStateStore(), FakePublisher()
    service = ResolveRuntime(
        resolve_config(settings),
        store,
        publisher,
        clock=lambda: NOW,
        sleep=lambda _: None,
        link_evidence=FakeLinkEvidence(),
    )
    return service, store, publisher


def with_token(event_id: str, client_id: str, canonical: str, minutes_ago: int) -> dict[str, Any]:
    token = mint_link_token(canonical, "s" * 32, NOW / 1_000_000, 300, f"nonce-{event_id}")
    return {
        **raw(event_id, minutes_ago),
        "client_id": client_id,
        "page_location": f"https://checkout.example/?_gs_link={token}",
    }


def test_an_aliased_client_follows_its_canonical_client_and_a_cycle_is_refused():
    """B aliased to A resolves on A; a token on A pointing back at B never aliases A to itself."""
    service, store, publisher = linking_runtime()
    service.handle(cloud_event(raw("a1", 5)))
    service.handle(cloud_event(with_token("b1", "3.4", "1.2", 4)))
    service.handle(cloud_event(with_token("a2", "1.2", "3.4", 3)))
    results = {
        e["resolved"]["event_id"]: e["resolved"] for e in publisher.on(SETTINGS.topics.enriched)
    }
    assert results["b1"]["client_id"] == "1.2"
    assert results["b1"]["link"] == {"kind": "token", "from_client_id": "3.4"}
    assert results["a2"]["client_id"] == "1.2"
    assert results["a2"]["link"] is None
    assert store.states["3.4"][0].alias_of == "1.2"
    assert store.states["1.2"][0].alias_of is None
    assert {r["session_id"] for r in results.values()} == {results["a1"]["session_id"]}


def test_an_event_resolved_before_its_client_was_aliased_stays_a_duplicate_after():
    """A redelivery of an event from before the alias is answered from the alias's record."""
    service, store, _ = linking_runtime()
    service.handle(cloud_event(raw("a1", 5)))
    service.handle(cloud_event({**raw("b0", 6), "client_id": "3.4"}))
    service.handle(cloud_event(with_token("b1", "3.4", "1.2", 4)))
    outcome = service.handle(cloud_event({**raw("b0", 6), "client_id": "3.4"}))
    assert outcome.status == "duplicate"
    assert outcome.enriched is not None
    assert outcome.enriched["resolved"]["client_id"] == "3.4"
    assert store.states["1.2"][0].events == 2
