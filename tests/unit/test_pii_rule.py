"""One PII rule: the resolver, the forwarder and the inline endpoint agree on every user id.

A user id the resolver keeps must be one the forwarder sends, and one it pseudonymizes
must never reach GA4 or the GTM variable raw; otherwise a user's every event is stitched
by one function and dead-lettered by the next.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.bootstrap import link_rules, payload_rules, resolve_config
from shared.domain.events import decode_raw_event
from shared.domain.measurement import build_request
from shared.domain.validation import validate
from shared.services.inline import InlineRuntime
from shared.services.resolve import ResolveRuntime
from shared.settings import Ga4Settings, PrivacySettings, Settings
from tests.cloudevents import http_request
from tests.fakes import FakePublisher, FakeStateStore

NOW = 1_763_800_154_000_000
SETTINGS = Settings(
    project="demo-pii",
    privacy=PrivacySettings(pii_hash_secret="p" * 32),
    ga4=Ga4Settings(measurement_id="G-PII", api_secret="s"),
)
PII_LIKE = [
    "jane.doe@example.com",
    "JANE.DOE%40example.com",
    "+1 555 123 4567",
    "(555) 123-4567",
    "06 12 34 56 78",
    "0044 20 7946 0958",
]
NOT_PII = ["555-1234", "cust-000981", "12345678901", "u_" + "ab" * 32, "2024.05.01", "A-17"]


def _resolved_user(user_id: str) -> str | None:
    publisher = FakePublisher()
    runtime = ResolveRuntime(
        resolve_config(SETTINGS), FakeStateStore(), publisher, clock=lambda: NOW
    )
    data = {"client_id": "1.2", "event_name": "login", "user_id": user_id, "event_id": "e-1"}
    runtime.process(decode_raw_event({**data, "timestamp_micros": NOW}, "m-1", None))
    [enriched] = publisher.on(SETTINGS.topics.enriched)
    assert user_id not in json.dumps(enriched) or enriched["resolved"]["user_id"] == user_id
    return _forwardable(enriched)


def _forwardable(enriched: dict[str, Any]) -> str | None:
    """The resolver's user id, checked to be one the forwarder sends unchanged."""
    body = build_request(enriched, payload_rules(SETTINGS)).body
    validation = validate(body, now_micros=NOW)
    assert validation.sendable, validation.fatal_messages
    assert validation.body.get("user_id") == enriched["resolved"]["user_id"]
    return enriched["resolved"]["user_id"]


def _inline_user(user_id: str) -> str | None:
    publisher = FakePublisher()
    resolver = ResolveRuntime(
        resolve_config(SETTINGS), FakeStateStore(), publisher, clock=lambda: NOW
    )
    inline = InlineRuntime(link_rules(SETTINGS), resolver, publisher, clock=lambda: NOW)
    body = {"client_id": "1.2", "user_id": user_id, "event_timestamp": NOW // 1000}
    answer, status, _ = inline.handle_resolve(http_request(body))
    assert status == 200
    return answer["resolved_user_id"]


@pytest.mark.parametrize("user_id", PII_LIKE)
def test_a_pii_like_user_id_is_pseudonymized_alike_by_all_three(user_id: str) -> None:
    """Resolver and inline endpoint give the same pseudonym, which the forwarder sends."""
    resolved = _resolved_user(user_id)
    assert resolved is not None
    assert resolved.startswith("h_")
    assert _inline_user(user_id) == resolved


@pytest.mark.parametrize("user_id", NOT_PII)
def test_an_ordinary_user_id_passes_all_three_unchanged(user_id: str) -> None:
    """Customer numbers and pseudonyms are kept, forwarded and answered as they are."""
    assert _resolved_user(user_id) == user_id
    assert _inline_user(user_id) == user_id
