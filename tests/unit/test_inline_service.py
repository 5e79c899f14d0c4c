"""The inline endpoints with hand-written fakes of the state store and the publisher."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from shared.bootstrap import link_rules, resolve_config
from shared.domain.crossdomain.tokens import check_link_token
from shared.services.inline import KEY_HEADER, InlineRuntime, decode_request, derived_event_id
from shared.services.resolve import ResolveRuntime
from shared.settings import PrivacySettings, Settings
from tests.cloudevents import http_request as request
from tests.fakes import FakeLinkEvidence, FakePublisher, FakeStateStore

NOW = 1_763_800_154_000_000
MINUTE = 60_000_000
SECRET = "link-token-secret-of-32-bytes!!!"
SETTINGS = Settings(
    project="demo-inline",
    privacy=PrivacySettings(link_token_secret=SECRET, link_token_ttl_seconds=300),
)


class World:
    def __init__(self, settings: Settings = SETTINGS, shared_key: str | None = None) -> None:
        self.store = FakeStateStore()
        self.publisher = FakePublisher()
        self.now = NOW
        resolver = ResolveRuntime(
            resolve_config(settings),
            self.store,
            self.publisher,
            clock=lambda: self.now,
            sleep=lambda _: None,
            link_evidence=FakeLinkEvidence(),
        )
        self.runtime = InlineRuntime(
            link_rules(settings),
            resolver,
            self.publisher,
            shared_key=shared_key,
            clock=lambda: self.now,
            nonce=lambda: "fixed-nonce-0001",
        )

    def resolve(self, body: Any, **options: Any) -> tuple[dict[str, Any], int]:
        answer, status, _ = self.runtime.handle_resolve(request(body, **options))
        return answer, status

    def mint(self, body: Any, **options: Any) -> tuple[dict[str, Any], int]:
        answer, status, _ = self.runtime.handle_mint(request(body, **options))
        return answer, status


def at(minute: float) -> int:
    """An event time in milliseconds, ``minute`` minutes after an hour before now."""
    return (NOW - 60 * MINUTE + int(minute * MINUTE)) // 1_000


def test_an_answer_carries_every_contract_field() -> None:
    """200 with the stitched user, the GA4 session and the canonical client id."""
    world = World()
    body = {"client_id": "GA1.1.111.222", "user_id": "cust-1", "event_timestamp": at(0)}
    answer, status = world.resolve(body)
    assert status == 200
    assert answer == {
        "resolved_user_id": "cust-1",
        "resolved_ga_session_id": at(0) // 1_000,
        "session_number": 1,
        "identity_source": "incoming",
        "client_id": "111.222",
        "event_index": 1,
        "is_new_session": True,
        "event_id": derived_event_id(decode_request(body)),
        "source": "server",
    }


def test_later_events_continue_the_session_and_a_gap_starts_the_next() -> None:
    """Events within 30 minutes share a session; after a gap the session number grows."""
    world = World()
    first, _ = world.resolve({"client_id": "1.2", "event_timestamp": at(0)})
    second, _ = world.resolve({"client_id": "1.2", "event_timestamp": at(10)})
    third, _ = world.resolve({"client_id": "1.2", "event_timestamp": at(50)})
    assert second["resolved_ga_session_id"] == first["resolved_ga_session_id"]
    assert (second["event_index"], second["is_new_session"]) == (2, False)
    assert third["resolved_ga_session_id"] == at(50) // 1_000
    assert third["session_number"] == 2


def test_two_reads_of_one_event_without_an_event_id_count_once() -> None:
    """The derived event id makes a repeated read a duplicate with the identical answer."""
    world = World()
    body = {"client_id": "1.2", "user_id": "cust-1", "event_timestamp": at(0)}
    first, _ = world.resolve(body)
    second, _ = world.resolve(body)
    assert first == second
    state, _ = world.store.states["1.2"]
    assert state.events == 1


def test_the_derived_event_id_is_stable_per_event_and_distinct_across_events() -> None:
    """Spellings of one event share an id; another time, user or name gives another id."""
    base = {"client_id": "1.2", "user_id": "u-1", "event_timestamp": at(0)}
    same = derived_event_id(decode_request({**base, "client_id": "GA1.1.1.2"}))
    event_id = derived_event_id(decode_request(base))
    assert event_id == same
    assert event_id.startswith("inline-")
    others = [
        {**base, "event_timestamp": at(0) + 1},
        {**base, "user_id": "u-2"},
        {key: value for key, value in base.items() if key != "user_id"},
        {**base, "event_name": "purchase"},
    ]
    assert all(derived_event_id(decode_request(other)) != event_id for other in others)


def test_a_given_event_id_is_used_as_is() -> None:
    """An event_id in the request is the id the answer is recorded under."""
    world = World()
    answer, _ = world.resolve({"client_id": "1.2", "event_timestamp": at(0), "event_id": "e-9"})
    assert answer["event_id"] == "e-9"
    state, _ = world.store.states["1.2"]
    assert [record.event_id for record in state.processed] == ["e-9"]


def test_the_event_name_defaults_to_page_view() -> None:
    """Without event_name the event is a page_view."""
    event = decode_request({"client_id": "1.2", "event_timestamp": at(0), "event_name": ""})
    assert event.event_name == "page_view"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not_json"),
        ([1, 2], "not_an_object"),
        ({"event_timestamp": at(0)}, "missing_client_id"),
        ({"client_id": "undefined", "event_timestamp": at(0)}, "malformed_client_id"),
        (
            {"client_id": "1.2", "event_timestamp": at(0), "event_name": "1x"},
            "malformed_event_name",
        ),
        ({"client_id": "1.2", "event_timestamp": "soon"}, "unparseable_time"),
        ({"client_id": "1.2", "event_timestamp": 1000}, "absurd_time"),
        ({"client_id": "1.2"}, "missing_time"),
        ({"client_id": "1.2", "event_timestamp": at(-80 * 60)}, "too_late"),
        ({"client_id": "1.2", "event_timestamp": at(26 * 60)}, "time_in_future"),
    ],
)
def test_bad_input_answers_400_with_its_reason(body: Any, reason: str) -> None:
    """Each broken rule answers 400 with its reason and a detail, and keeps no state."""
    world = World()
    answer, status = world.resolve(body)
    assert status == 400
    assert answer["reason"] == reason
    assert answer["detail"]
    assert world.store.states == {}


def test_only_post_is_allowed() -> None:
    """Any other method answers 405 and names the allowed one."""
    world = World()
    answer, status, headers = world.runtime.handle_resolve(request({}, method="GET"))
    assert (status, answer["reason"], headers["Allow"]) == (405, "method_not_allowed", "POST")
    _, status, _ = world.runtime.handle_mint(request({}, method="PUT"))
    assert status == 405


def test_a_login_publishes_one_identity_link_and_no_enriched_event() -> None:
    """A new link goes to the identity-links topic; later anonymous events are stitched."""
    world = World()
    login = {
        "client_id": "1.2",
        "user_id": "cust-1",
        "event_timestamp": at(0),
        "event_name": "login",
    }
    world.resolve(login)
    later, _ = world.resolve({"client_id": "1.2", "event_timestamp": at(1)})
    assert [m.topic for m in world.publisher.messages] == [SETTINGS.topics.identity_links]
    link = json.loads(world.publisher.messages[0].data)
    assert (link["client_id"], link["user_id"]) == ("1.2", "cust-1")
    assert (later["resolved_user_id"], later["identity_source"]) == ("cust-1", "stitched")


def test_a_logout_ends_the_stitching() -> None:
    """After an event named logout, anonymous events stay anonymous."""
    world = World()
    world.resolve({"client_id": "1.2", "user_id": "cust-1", "event_timestamp": at(0)})
    world.resolve({"client_id": "1.2", "event_timestamp": at(1), "event_name": "logout"})
    after, _ = world.resolve({"client_id": "1.2", "event_timestamp": at(2)})
    assert (after["resolved_user_id"], after["identity_source"]) == (None, "anonymous")


def test_consent_denied_answers_without_user_or_session_and_keeps_no_state() -> None:
    """analytics_storage denied: null session and user, nothing stored."""
    world = World()
    body = {"client_id": "1.2", "user_id": "cust-1", "event_timestamp": at(0), "x-ga-gcs": "G100"}
    answer, status = world.resolve(body)
    assert status == 200
    assert answer["resolved_ga_session_id"] is None
    assert answer["resolved_user_id"] is None
    assert world.store.states == {}


def test_an_email_user_id_is_never_answered_raw() -> None:
    """A PII-looking user id comes back as its pseudonym, or null without a hash secret."""
    body = {"client_id": "1.2", "user_id": "Ann@Example.com", "event_timestamp": at(0)}
    hashed = replace(SETTINGS, privacy=replace(SETTINGS.privacy, pii_hash_secret="p" * 32))
    answer, _ = World(hashed).resolve(body)
    assert answer["resolved_user_id"].startswith("h_")
    answer, _ = World().resolve(body)
    assert answer["resolved_user_id"] is None


def test_a_state_store_failure_answers_503() -> None:
    """When Firestore stays unavailable the answer is 503, so the variable falls back."""
    world = World()
    world.store.unavailable = True
    answer, status = world.resolve({"client_id": "1.2", "event_timestamp": at(0)})
    assert (status, answer["reason"]) == (503, "unavailable")


def test_a_link_publish_failure_answers_503() -> None:
    """A new link that cannot be published answers 503."""
    world = World()
    world.publisher.fail = True
    body = {"client_id": "1.2", "user_id": "cust-1", "event_timestamp": at(0)}
    _, status = world.resolve(body)
    assert status == 503


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({KEY_HEADER: "wrong"}, 401), ({KEY_HEADER: "the-key"}, 200)],
)
def test_a_configured_shared_key_is_required_on_both_endpoints(
    headers: dict[str, str], status: int
) -> None:
    """With a shared key set, only requests carrying it in X-Ga4-Stitch-Key are served."""
    world = World(shared_key="the-key")
    body = {"client_id": "1.2", "event_timestamp": at(0)}
    assert world.resolve(body, headers=headers)[1] == status
    assert world.mint({"client_id": "1.2"}, headers=headers)[1] == status


def test_without_a_shared_key_no_header_is_needed() -> None:
    """Without a shared key, authentication is Cloud Run IAM's alone."""
    assert World().resolve({"client_id": "1.2", "event_timestamp": at(0)})[1] == 200


def test_a_minted_token_is_accepted_until_it_expires() -> None:
    """check_link_token accepts the minted token for the canonical client until expires_at."""
    world = World()
    answer, status = world.mint({"client_id": "GA1.1.111.222"})
    assert status == 200
    assert answer["parameter"] == "_gs_link"
    assert answer["expires_at"] == NOW // 1_000_000 + 300
    check = check_link_token(answer["token"], SECRET, NOW / 1_000_000 + 299)
    assert (check.ok, check.client_id) == (True, "111.222")
    assert check_link_token(answer["token"], SECRET, answer["expires_at"]).failure == "expired"


def test_minting_reads_the_runtime_clock() -> None:
    """The expiry follows the injected clock, not the wall clock."""
    world = World()
    world.now = NOW + 3_600 * 1_000_000
    answer, _ = world.mint({"client_id": "1.2"})
    assert answer["expires_at"] == NOW // 1_000_000 + 3_600 + 300


@pytest.mark.parametrize(
    ("body", "reason"),
    [({"client_id": "x"}, "malformed_client_id"), ({}, "missing_client_id"), (b"[", "not_json")],
)
def test_minting_for_a_bad_client_id_answers_400(body: Any, reason: str) -> None:
    """A missing or malformed client id is refused with its reason."""
    answer, status = World().mint(body)
    assert (status, answer["reason"]) == (400, reason)


def test_minting_without_a_secret_answers_501() -> None:
    """Link tokens are disabled until LINK_TOKEN_SECRET is set."""
    answer, status = World(Settings(project="demo-inline")).mint({"client_id": "1.2"})
    assert (status, answer["reason"]) == (501, "link_tokens_disabled")


def test_a_minted_token_carried_inline_continues_the_first_domains_client() -> None:
    """An event on the second domain with a minted token answers the first domain's client."""
    world = World()
    minted, _ = world.mint({"client_id": "GA1.1.111.222"})
    landing = f"https://checkout.example.org/?{minted['parameter']}={minted['token']}"
    hop, _ = world.resolve(
        {"client_id": "333.444", "event_timestamp": at(0), "page_location": landing}
    )
    later, _ = world.resolve({"client_id": "333.444", "event_timestamp": at(1)})
    assert hop["client_id"] == later["client_id"] == "111.222"
    assert later["resolved_ga_session_id"] == hop["resolved_ga_session_id"]


def test_a_dropped_bot_event_answers_without_session_and_keeps_no_state() -> None:
    """With BOT_MODE=drop, a crawler's event gets null ids and touches no state."""
    dropping = replace(SETTINGS, privacy=replace(SETTINGS.privacy, bot_mode="drop"))
    world = World(dropping)
    body = {"client_id": "1.2", "event_timestamp": at(0), "user_agent": "Googlebot/2.1"}
    answer, status = world.resolve(body)
    assert (status, answer["resolved_ga_session_id"], answer["client_id"]) == (200, None, "1.2")
    assert world.store.states == {}
