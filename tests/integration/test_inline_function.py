"""The inline HTTP functions through functions-framework, sharing state with the pipeline."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import functions_framework
import pytest
from google.cloud import firestore

from shared.domain.crossdomain.tokens import check_link_token
from tests.conftest import PROJECT
from tests.integration.pubsub_helpers import pull_all

pytestmark = pytest.mark.integration

MAIN = os.path.join(os.path.dirname(__file__), "..", "..", "functions", "main.py")
NOW_MICROS = time.time_ns() // 1_000
STREAM = "G-TEST000001"
SECRET = "integration-link-token-secret-32b"
COMPARED = ("session_id", "session_number", "event_index", "is_new_session", "user_id")
EVENTS = [("e1", 0), ("e2", 5), ("e3", 10), ("e4", 50), ("e5", 55), ("e6", 120)]
"""Three sessions: e1-e3, e4-e5 (after a 40-minute gap), e6."""


def inline_app(target: str = "resolve_identity_session") -> Any:
    """A fresh instance of an HTTP function (its own settings, clients and state cache)."""
    return functions_framework.create_app(target, MAIN, "http").test_client()


def pipeline_app() -> Any:
    """A fresh instance of the resolve function, as Pub/Sub push delivery reaches it."""
    return functions_framework.create_app("resolve", MAIN, "http").test_client()


def millis(minute: float) -> int:
    return (NOW_MICROS - 3 * 3_600_000_000 + int(minute * 60_000_000)) // 1_000


def ask(app: Any, client_id: str, minute: float, **extra: Any) -> dict[str, Any]:
    """One inline resolution; asserts it answered 200."""
    body = {"client_id": client_id, "event_timestamp": millis(minute), **extra}
    response = app.post("/", json=body)
    assert response.status_code == 200, response.get_json()
    answer: dict[str, Any] = response.get_json()
    return answer


def ask_as_pipeline_would(app: Any, client_id: str, event_id: str, minute: float) -> dict[str, Any]:
    """An inline answer in the pipeline's vocabulary, for comparing the two."""
    answer = ask(app, client_id, minute, event_id=event_id, measurement_id=STREAM)
    return {
        "session_id": answer["resolved_ga_session_id"],
        "session_number": answer["session_number"],
        "event_index": answer["event_index"],
        "is_new_session": answer["is_new_session"],
        "user_id": answer["resolved_user_id"],
    }


def deliver(app: Any, client_id: str, event_id: str, minute: float, **extra: Any) -> None:
    """One raw event through the resolve function, as the GTM SC tag publishes it."""
    data = {
        "client_id": client_id,
        "event_name": "page_view",
        "event_id": event_id,
        "timestamp_micros": millis(minute) * 1_000,
        "x-ga-measurement_id": STREAM,
        **extra,
    }
    message = {
        "data": base64.b64encode(json.dumps(data).encode()).decode(),
        "messageId": f"m-{client_id}-{event_id}",
        "publishTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "attributes": {"client_id": client_id},
    }
    body = {"message": message, "subscription": f"projects/{PROJECT}/subscriptions/raw-push"}
    assert app.post("/", json=body).status_code == 200


def enriched_by_client(subscription: str, expected: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Pulled enriched events as client id -> event id -> the compared resolved fields."""
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for body, _ in pull_all(subscription, expected):
        resolved = body["resolved"]
        fields = {name: resolved[name] for name in COMPARED}
        grouped.setdefault(resolved["client_id"], {})[resolved["event_id"]] = fields
    return grouped


def test_inline_and_the_pipeline_agree_on_the_sessions_of_the_same_events(
    topics: dict[str, str],
) -> None:
    """Inline first, pipeline after, or interleaved: the sessions the pipeline alone gives."""
    inline, pipeline = inline_app(), pipeline_app()
    for event_id, minute in EVENTS:
        deliver(pipeline, "10.1", event_id, minute)
    inline_first = {
        event_id: ask_as_pipeline_would(inline, "10.2", event_id, minute)
        for event_id, minute in EVENTS[:3]
    }
    for event_id, minute in EVENTS:
        deliver(pipeline, "10.2", event_id, minute)
    mixed: dict[str, dict[str, Any]] = {}
    for position, (event_id, minute) in enumerate(EVENTS):
        if position % 2 == 0:
            mixed[event_id] = ask_as_pipeline_would(inline, "10.3", event_id, minute)
        else:
            deliver(pipeline, "10.3", event_id, minute)

    published = enriched_by_client(topics["ENRICHED_TOPIC"], 6 + 6 + 3)
    alone = published["10.1"]
    assert [alone[e]["session_number"] for e, _ in EVENTS] == [1, 1, 1, 2, 2, 3]
    assert inline_first == {event_id: alone[event_id] for event_id in inline_first}
    assert published["10.2"] == alone
    assert {**published["10.3"], **mixed} == alone
    stored = firestore.Client(project=PROJECT).collection("clients").document("10.2").get()
    assert stored.to_dict()["events"] == len(EVENTS)


def test_a_login_through_inline_stitches_later_pipeline_events(topics: dict[str, str]) -> None:
    """A login resolved inline publishes the link, and later pipeline events carry the user."""
    inline, pipeline = inline_app(), pipeline_app()
    login = ask(inline, "20.1", 0, user_id="cust-7", event_name="login", measurement_id=STREAM)
    assert (login["resolved_user_id"], login["identity_source"]) == ("cust-7", "incoming")
    deliver(pipeline, "20.1", "after-login", 3)
    [(enriched, _)] = pull_all(topics["ENRICHED_TOPIC"], 1)
    resolved = enriched["resolved"]
    assert (resolved["user_id"], resolved["identity_source"]) == ("cust-7", "stitched")
    assert resolved["session_id"] == login["resolved_ga_session_id"]
    links = pull_all(topics["IDENTITY_LINKS_TOPIC"], 1)
    assert [(body["client_id"], body["user_id"]) for body, _ in links] == [("20.1", "cust-7")]


def test_a_minted_token_resolved_inline_aliases_the_client_for_the_pipeline(
    topics: dict[str, str],
) -> None:
    """A token hop resolved inline moves the second domain's client onto the first one's."""
    os.environ["LINK_TOKEN_SECRET"] = SECRET
    minted = inline_app("mint_link_token").post("/", json={"client_id": "60.1"}).get_json()
    landing = f"https://checkout.example.org/?{minted['parameter']}={minted['token']}"
    inline, pipeline = inline_app(), pipeline_app()
    hop = ask(inline, "60.2", 0, page_location=landing, measurement_id=STREAM)
    assert hop["client_id"] == "60.1"
    deliver(pipeline, "60.2", "after-hop", 2)
    [(enriched, _)] = pull_all(topics["ENRICHED_TOPIC"], 1)
    assert enriched["resolved"]["client_id"] == "60.1"
    assert enriched["resolved"]["session_id"] == hop["resolved_ga_session_id"]


def test_reads_of_one_event_on_two_instances_count_once(topics: dict[str, str]) -> None:
    """Without an event_id, the same request on two instances is one event, one answer."""
    body = {"client_id": "GA1.1.30.1", "user_id": "cust-3", "event_timestamp": millis(0)}
    first = inline_app().post("/", json=body).get_json()
    second = inline_app().post("/", json=body).get_json()
    assert first == second
    assert first["event_id"].startswith("inline-")
    assert first["client_id"] == "30.1"
    assert first["source"] == "server"
    stored = firestore.Client(project=PROJECT).collection("clients").document("30.1").get()
    assert stored.to_dict()["events"] == 1
    assert pull_all(topics["ENRICHED_TOPIC"], 0, timeout=1) == []


def test_bad_requests_are_refused_with_their_reason(topics: dict[str, str]) -> None:
    """Bad input answers 400 with a reason, another method 405; nothing is stored."""
    app = inline_app()
    not_json = app.post("/", data=b"{oops", content_type="application/json")
    assert (not_json.status_code, not_json.get_json()["reason"]) == (400, "not_json")
    bad_id = app.post("/", json={"client_id": "nope", "event_timestamp": millis(0)})
    assert (bad_id.status_code, bad_id.get_json()["reason"]) == (400, "malformed_client_id")
    assert app.get("/").status_code == 405
    assert list(firestore.Client(project=PROJECT).collection("clients").stream()) == []


def test_consent_denied_answers_null_ids_and_leaves_no_state(topics: dict[str, str]) -> None:
    """analytics_storage denied: no session, no user, nothing in Firestore."""
    answer = ask(inline_app(), "40.1", 0, user_id="cust-4", **{"x-ga-gcs": "G100"})
    assert (answer["resolved_ga_session_id"], answer["resolved_user_id"]) == (None, None)
    assert list(firestore.Client(project=PROJECT).collection("clients").stream()) == []


def test_a_minted_link_token_verifies_for_the_canonical_client(emulator_env_vars: Any) -> None:
    """mint_link_token answers a token that check_link_token accepts until it expires."""
    os.environ["LINK_TOKEN_SECRET"] = SECRET
    response = inline_app("mint_link_token").post("/", json={"client_id": "GA1.1.50.1"})
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["parameter"] == "_gs_link"
    check = check_link_token(answer["token"], SECRET, time.time())
    assert (check.ok, check.client_id, check.expires_at_seconds) == (
        True,
        "50.1",
        answer["expires_at"],
    )


def test_minting_is_disabled_without_a_secret(emulator_env_vars: Any) -> None:
    """Without LINK_TOKEN_SECRET the mint endpoint answers 501 link_tokens_disabled."""
    os.environ.pop("LINK_TOKEN_SECRET", None)
    response = inline_app("mint_link_token").post("/", json={"client_id": "50.1"})
    assert (response.status_code, response.get_json()["reason"]) == (501, "link_tokens_disabled")
