"""Two-domain journeys, privacy and bots through the resolve function on the real emulators."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from google.cloud import firestore

from shared.domain.crossdomain.linker import encode_linker
from shared.domain.crossdomain.tokens import mint_link_token
from tests.conftest import PROJECT
from tests.integration.pubsub_helpers import pull_all
from tests.integration.test_resolve_function import NOW_MICROS, deliver, make_app

pytestmark = pytest.mark.integration

SECRET = "a-link-token-secret-of-32-bytes!"
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0"
SHOP = "1768696203.1712345678"
CHECKOUT = "845123990.1763801000"


@pytest.fixture
def privacy_env(topics: dict[str, str]) -> dict[str, str]:
    os.environ.update(
        {
            "LINK_TOKEN_SECRET": SECRET,
            "PII_HASH_SECRET": "a-pii-hash-secret-of-32-bytes!!!",
            "PARTNER_DOMAINS": "shop.example.com",
            "BRIDGING_SALT": "a-bridging-salt-of-32-bytes!!!!!",
            "PII_PARAMETERS": "customer_email",
        }
    )
    return topics


def at(minute: float) -> int:
    return NOW_MICROS - 3_600_000_000 + int(minute * 60_000_000)


def event(client_id: str, minute: float, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "event_name": "page_view",
        "event_id": event_id,
        "timestamp_micros": at(minute),
        "x-ga-measurement_id": "G-TEST000001",
        "user_agent": UA,
        "ip_override": "203.0.113.27",
        "page_location": "https://shop.example.com/cart",
        **extra,
    }


def resolved_by_id(subscription: str, count: int) -> dict[str, dict[str, Any]]:
    return {body["resolved"]["event_id"]: body for body, _ in pull_all(subscription, count)}


def journey(app: Any, landing: dict[str, Any], subscription: str) -> dict[str, dict[str, Any]]:
    """Shop login and browse, the landing on checkout, one more checkout event."""
    assert deliver(app, event(SHOP, 0, "s1", user_id="cust-1", event_name="login"), "m1") == 200
    assert deliver(app, event(SHOP, 2, "s2"), "m2") == 200
    assert deliver(app, landing, "m3") == 200
    after = event(CHECKOUT, 4, "c2", page_location="https://checkout.example-pay.com/pay")
    assert deliver(app, after, "m4") == 200
    return resolved_by_id(subscription, 4)


def test_a_signed_link_token_keeps_the_checkout_in_the_shops_session(privacy_env: dict[str, str]):
    """The second domain's client continues the first one's session, number and user."""
    token = mint_link_token(SHOP, SECRET, NOW_MICROS / 1_000_000, 300, "nonce-0001")
    landing = event(
        CHECKOUT,
        3,
        "c1",
        page_location=f"https://checkout.example-pay.com/pay?_gs_link={token}&x=1",
    )
    by_id = journey(make_app(), landing, privacy_env["ENRICHED_TOPIC"])
    shop, landed, later = by_id["s1"]["resolved"], by_id["c1"]["resolved"], by_id["c2"]["resolved"]
    assert landed["client_id"] == later["client_id"] == SHOP
    assert landed["incoming_client_id"] == CHECKOUT
    assert landed["session_id"] == later["session_id"] == shop["session_id"]
    assert later["session_number"] == 1
    assert (later["user_id"], later["identity_source"]) == ("cust-1", "stitched")
    assert landed["link"] == {"kind": "token", "from_client_id": CHECKOUT}
    assert "_gs_link" not in by_id["c1"]["page_location"]
    links = [body for body, _ in pull_all(privacy_env["IDENTITY_LINKS_TOPIC"], 2)]
    assert {
        (link["link_kind"], link["client_id"], link["canonical_client_id"]) for link in links
    } == {
        ("login", SHOP, SHOP),
        ("token", CHECKOUT, SHOP),
    }
    alias = firestore.Client(project=PROJECT).collection("clients").document(CHECKOUT).get()
    assert alias.to_dict()["alias_of"] == SHOP


def test_a_replayed_or_forged_token_links_nothing(privacy_env: dict[str, str]):
    """A token used by one event cannot link another; a forged one never links."""
    app = make_app()
    token = mint_link_token(SHOP, SECRET, NOW_MICROS / 1_000_000, 300, "nonce-0002")
    forged = mint_link_token(
        SHOP, "another-secret-of-32-bytes-long!", NOW_MICROS / 1_000_000, 300, "nonce-0003"
    )
    url = "https://checkout.example-pay.com/pay?_gs_link={}"
    assert deliver(app, event(SHOP, 0, "s1"), "m1") == 200
    assert deliver(app, event("1.1", 1, "x1", page_location=url.format(token)), "m2") == 200
    assert deliver(app, event("2.2", 2, "x2", page_location=url.format(token)), "m3") == 200
    assert deliver(app, event("3.3", 2, "x3", page_location=url.format(forged)), "m4") == 200
    by_id = resolved_by_id(privacy_env["ENRICHED_TOPIC"], 4)
    assert by_id["x1"]["resolved"]["client_id"] == SHOP
    assert by_id["x2"]["resolved"]["client_id"] == "2.2"
    assert by_id["x3"]["resolved"]["client_id"] == "3.3"


def test_ga4s_own_linker_parameter_links_the_two_domains(privacy_env: dict[str, str]):
    """A valid _gl for the event's browser and minute aliases the checkout client."""
    linker = encode_linker(SHOP, UA, at(3) / 1_000_000)
    landing = event(
        CHECKOUT, 3, "c1", page_location=f"https://checkout.example-pay.com/pay?_gl={linker}"
    )
    by_id = journey(make_app(), landing, privacy_env["ENRICHED_TOPIC"])
    assert by_id["c2"]["resolved"]["client_id"] == SHOP
    assert by_id["c2"]["resolved"]["session_id"] == by_id["s1"]["resolved"]["session_id"]
    assert by_id["c1"]["resolved"]["link"]["kind"] == "linker"


def test_a_linker_from_another_browser_links_nothing(privacy_env: dict[str, str]):
    """A _gl whose checksum was made for another user agent is refused."""
    linker = encode_linker(SHOP, "Another browser/1.0", at(3) / 1_000_000)
    landing = event(
        CHECKOUT, 3, "c1", page_location=f"https://checkout.example-pay.com/pay?_gl={linker}"
    )
    by_id = journey(make_app(), landing, privacy_env["ENRICHED_TOPIC"])
    assert by_id["c2"]["resolved"]["client_id"] == CHECKOUT


def test_a_probabilistic_bridge_links_a_partner_referral_and_says_so(privacy_env: dict[str, str]):
    """Same user agent and IP within 60 s of a partner-domain event: linked, probabilistic."""
    landing = event(
        CHECKOUT,
        2.5,
        "c1",
        page_location="https://checkout.example-pay.com/pay",
        page_referrer="https://shop.example.com/cart",
    )
    by_id = journey(make_app(), landing, privacy_env["ENRICHED_TOPIC"])
    assert by_id["c1"]["resolved"]["link"] == {"kind": "probabilistic", "from_client_id": CHECKOUT}
    assert by_id["c2"]["resolved"]["client_id"] == SHOP


def test_pii_never_reaches_firestore_or_the_enriched_event(privacy_env: dict[str, str]):
    """An email user id is hashed; user_data and configured parameters are scrubbed."""
    app = make_app()
    raw = event(
        SHOP,
        0,
        "p1",
        user_id="Jane.Doe@example.com",
        customer_email="jane.doe@example.com",
        user_data={"email_address": "jane.doe@example.com", "phone_number": "+15551234567"},
    )
    assert deliver(app, raw, "m1") == 200
    [(enriched, _)] = pull_all(privacy_env["ENRICHED_TOPIC"], 1)
    stored = [
        doc.to_dict()
        for name in ("clients", "users")
        for doc in firestore.Client(project=PROJECT).collection(name).stream()
    ]
    text = json.dumps([enriched, stored], default=str).lower()
    assert "jane.doe" not in text
    assert "5551234567" not in text
    assert enriched["resolved"]["user_id"].startswith("h_")
    assert enriched["user_id"] == enriched["resolved"]["user_id"]


def test_bots_are_flagged_by_default(privacy_env: dict[str, str]):
    """A crawler's event is kept but flagged in the enriched event."""
    app = make_app()
    crawler = event(
        "5.5",
        0,
        "b1",
        user_agent="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    )
    assert deliver(app, crawler, "m1") == 200
    [(enriched, _)] = pull_all(privacy_env["ENRICHED_TOPIC"], 1)
    assert enriched["resolved"]["bot"] is True
