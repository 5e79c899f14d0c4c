"""Measurement Protocol body -> Data Manager ``IngestEventsRequest``, field by field
(https://developers.google.com/data-manager/api/devguides/events/analytics/measurement-protocol/upgrade/field-mappings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.domain.datamanager import (
    AdsConversion,
    DataManagerDestination,
    DestinationPlan,
    ads_conversions_from_json,
    dead_letter_reason,
    ingest_request,
    refusals,
    rfc3339,
)
from shared.domain.measurement import PayloadRules, build_request
from shared.domain.validation import validate
from shared.errors import SettingsError
from shared.settings import Settings

NOW = 1_763_800_154_123_456
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "gtm-sc-event-data.json"
DESTINATION = DataManagerDestination(property_id="123456789", measurement_id="G-SHOP")
ADS = AdsConversion(customer_id="1234567890", conversion_action_id="987654321")


def fixture_event(name: str) -> dict[str, Any]:
    events = json.loads(FIXTURE.read_text(encoding="utf-8"))["events"]
    return dict(next(e for e in events if e.get("event_name") == name))


def enriched(name: str = "purchase", **resolved: Any) -> dict[str, Any]:
    """A realistic enriched event: the fixture's server-container data plus ``resolved``."""
    event = fixture_event(name)
    event["event_location"] = {"country": "BR", "region": "SP", "city": "Sao Paulo"}
    event["resolved"] = {
        "event_id": "e-1",
        "event_name": name,
        "timestamp_micros": NOW,
        "client_id": "1768696203.1712345678",
        "user_id": "cust-1",
        "session_id": 1_763_800_154,
        "session_number": 3,
        "consent": {"ad_user_data": "granted", "ad_personalization": "denied"},
        "earliest_in_session": True,
        "traffic_source": {"source": "google", "medium": "cpc", "campaign": "nov"},
        **resolved,
    }
    return event


def body_of(event: dict[str, Any]) -> dict[str, Any]:
    request = build_request(event, PayloadRules(default_measurement_id="G-SHOP"))
    return validate(request.body, now_micros=NOW).body


def request_of(
    event: dict[str, Any], destination: DataManagerDestination = DESTINATION
) -> dict[str, Any]:
    return ingest_request(body_of(event), destination)


def ga4_event(request: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in request["events"] if e.get("event_name") == name)


def params(event: dict[str, Any]) -> dict[str, str]:
    return {p["parameter_name"]: p["value"] for p in event.get("additional_event_parameters", [])}


def test_the_stream_is_the_product_destination_of_the_ga4_property() -> None:
    """measurement_id -> product_destination_id; the property is the operating account."""
    destination = request_of(enriched())["destinations"][0]
    assert destination == {
        "reference": "ga4",
        "operating_account": {
            "account_type": "GOOGLE_ANALYTICS_PROPERTY",
            "account_id": "123456789",
        },
        "product_destination_id": "G-SHOP",
    }


def test_a_login_account_is_sent_when_configured() -> None:
    """The account the credentials act through travels as login_account."""
    destination = DataManagerDestination("1", "G-SHOP", login_account=("GOOGLE_ADS", "42"))
    block = request_of(enriched(), destination)["destinations"][0]
    assert block["login_account"] == {"account_type": "GOOGLE_ADS", "account_id": "42"}


def test_consent_is_the_requests_with_the_apis_words() -> None:
    """consent -> request consent, GRANTED/DENIED -> CONSENT_GRANTED/CONSENT_DENIED."""
    request = request_of(enriched())
    assert request["consent"] == {
        "ad_user_data": "CONSENT_GRANTED",
        "ad_personalization": "CONSENT_DENIED",
    }


def test_non_personalized_ads_denies_ad_personalization_on_each_event() -> None:
    """non_personalized_ads true -> events.consent.ad_personalization DENIED."""
    body = body_of(enriched("page_view")) | {"non_personalized_ads": True}
    request = ingest_request(body, DESTINATION)
    assert all(e["consent"] == {"ad_personalization": "CONSENT_DENIED"} for e in request["events"])


def test_ids_and_time_go_on_every_event() -> None:
    """client_id, user_id -> events[]; timestamp_micros -> event_timestamp in RFC 3339."""
    for event in request_of(enriched("page_view"))["events"]:
        assert event["client_id"] == "1768696203.1712345678"
        assert event["user_id"] == "cust-1"
        assert event["event_timestamp"] == "2025-11-22T08:29:14.123456Z"
        assert event["event_source"] == "WEB"
        assert event["destination_references"] == ["ga4"]


def test_rfc3339_keeps_microseconds_and_drops_an_empty_fraction() -> None:
    """A Timestamp's JSON form: UTC, 'Z', six digits only when there are any."""
    assert rfc3339(1_763_800_154_000_000) == "2025-11-22T08:29:14Z"
    assert rfc3339(1_763_800_154_000_007) == "2025-11-22T08:29:14.000007Z"


def test_an_events_own_timestamp_wins_over_the_requests() -> None:
    """MP lets an event carry timestamp_micros; the API has only the event's."""
    body = body_of(enriched("page_view"))
    body["events"][-1]["timestamp_micros"] = NOW + 1_000_000
    request = ingest_request(body, DESTINATION)
    assert request["events"][-1]["event_timestamp"] == "2025-11-22T08:29:15.123456Z"


def test_user_properties_become_additional_user_properties_and_customer_enums() -> None:
    """user_properties -> events.user_properties; customer_type / value bucket as enums."""
    body = body_of(enriched("page_view"))
    body["user_properties"] = {
        "plan": {"value": "gold"},
        "visits": {"value": 12},
        "customer_type": {"value": "returning"},
        "customer_value_bucket": {"value": "high"},
    }
    block = ingest_request(body, DESTINATION)["events"][0]["user_properties"]
    assert block == {
        "customer_type": "RETURNING",
        "customer_value_bucket": "HIGH",
        "additional_user_properties": [
            {"property_name": "plan", "value": "gold"},
            {"property_name": "visits", "value": "12"},
        ],
    }


def test_user_data_becomes_hex_user_identifiers() -> None:
    """user_data -> events.user_data.user_identifiers; encoding HEX at the request."""
    request = request_of(enriched())
    identifiers = ga4_event(request, "purchase")["user_data"]["user_identifiers"]
    assert [next(iter(i)) for i in identifiers] == ["email_address", "phone_number"]
    assert all(len(next(iter(i.values()))) == 64 for i in identifiers)
    assert request["encoding"] == "HEX"


def test_an_address_maps_to_address_info() -> None:
    """sha256 names and street, city, region, postal code, country -> AddressInfo."""
    body = body_of(enriched("page_view"))
    body["user_data"] = {
        "address": [
            {
                "sha256_first_name": "a" * 64,
                "sha256_last_name": "b" * 64,
                "sha256_street": "c" * 64,
                "city": "london",
                "region": "greaterlondon",
                "postal_code": "SW1A 1AA",
                "country": "GB",
            }
        ]
    }
    identifiers = ingest_request(body, DESTINATION)["events"][0]["user_data"]["user_identifiers"]
    assert identifiers == [
        {
            "address": {
                "given_name": "a" * 64,
                "family_name": "b" * 64,
                "address_line": "c" * 64,
                "city": "london",
                "administrative_area": "greaterlondon",
                "postal_code": "SW1A 1AA",
                "region_code": "GB",
            }
        }
    ]


def test_user_location_becomes_event_location() -> None:
    """region_id -> subdivision_code, country_id -> region_code, M49 ids -> codes."""
    location = ga4_event(request_of(enriched()), "purchase")["event_location"]
    assert location == {
        "city": "Sao Paulo",
        "subdivision_code": "BR-SP",
        "region_code": "BR",
        "subcontinent_code": "005",
        "continent_code": "019",
    }


def test_device_becomes_event_device_info_with_the_screen_split() -> None:
    """device -> event_device_info; screen_resolution WxH -> width and height."""
    info = request_of(enriched("page_view"))["events"][-1]["event_device_info"]
    assert info["category"] == "desktop"
    assert info["browser"] == "Firefox"
    assert info["operating_system"] == "Macintosh"
    assert info["language_code"] == "en-GB"
    assert (info["screen_width"], info["screen_height"]) == (2560, 1440)


def test_ip_override_and_user_agent_go_to_event_device_info() -> None:
    """ip_override -> ip_address; user_agent (sent when no device was parsed) -> user_agent."""
    body = body_of(enriched("page_view"))
    body.pop("device", None)
    body.pop("user_location", None)
    body |= {"ip_override": "203.0.113.0", "user_agent": "Mozilla/5.0 (Unknown)"}
    info = ingest_request(body, DESTINATION)["events"][0]["event_device_info"]
    assert info == {"user_agent": "Mozilla/5.0 (Unknown)", "ip_address": "203.0.113.0"}


def test_session_engagement_and_page_fields_are_additional_event_parameters() -> None:
    """session_id, engagement_time_msec, session_number and page fields, as strings."""
    found = params(ga4_event(request_of(enriched("page_view")), "page_view"))
    assert found["session_id"] == "1763800154"
    assert found["engagement_time_msec"] == "1"
    assert found["session_number"] == "3"
    assert found["page_location"].startswith("https://shop.example.com/products/42")
    assert found["page_title"] == "Blue T-Shirt | Example Shop"
    assert found["page_referrer"] == "https://mail.example.net/"


def test_the_sessions_traffic_source_travels_as_campaign_details_first() -> None:
    """The campaign_details event leads, with source / medium / campaign parameters."""
    request = request_of(enriched("page_view"))
    first = request["events"][0]
    assert first["event_name"] == "campaign_details"
    assert params(first) == {
        "campaign": "nov",
        "source": "google",
        "medium": "cpc",
        "session_id": "1763800154",
    }


def test_purchase_fields_are_structured() -> None:
    """transaction_id, currency, value -> structured fields; not repeated as parameters."""
    purchase = ga4_event(request_of(enriched()), "purchase")
    assert purchase["transaction_id"] == "T-100045"
    assert purchase["currency"] == "EUR"
    assert purchase["conversion_value"] == 65.32
    assert {"transaction_id", "currency", "value", "items"}.isdisjoint(params(purchase))
    assert params(purchase)["tax"] == "3.35"
    assert params(purchase)["shipping"] == "5"


def test_items_become_cart_data_items() -> None:
    """item_id, quantity, price -> unit_price; other item fields -> additional_item_parameters."""
    cart = ga4_event(request_of(enriched()), "purchase")["cart_data"]
    assert cart["items"][0] == {
        "item_id": "SKU_001",
        "quantity": 2,
        "unit_price": 19.99,
        "additional_item_parameters": [{"parameter_name": "item_name", "value": "Blue T-Shirt"}],
    }


def test_a_coupon_becomes_a_coupon_code() -> None:
    """The event's coupon -> cart_data.coupon_codes."""
    body = body_of(enriched())
    body["events"][-1]["params"]["coupon"] = "SUMMER"
    purchase = ingest_request(body, DESTINATION)["events"][-1]
    assert purchase["cart_data"]["coupon_codes"] == ["SUMMER"]


def test_a_configured_purchase_also_goes_to_the_ads_conversion_action() -> None:
    """A separate Ads event in the same request: transaction_id, value, cart data, user data."""
    destination = DataManagerDestination("1", "G-SHOP", ads_conversions={"purchase": ADS})
    request = request_of(enriched(), destination)
    assert request["destinations"][1] == {
        "reference": "ads_purchase",
        "operating_account": {"account_type": "GOOGLE_ADS", "account_id": "1234567890"},
        "product_destination_id": "987654321",
    }
    ads = request["events"][-1]
    assert ads["destination_references"] == ["ads_purchase"]
    assert ads["transaction_id"] == "T-100045"
    assert ads["conversion_value"] == 65.32
    assert ads["currency"] == "EUR"
    assert ads["cart_data"]["items"][0] == {
        "merchant_product_id": "SKU_001",
        "quantity": 2,
        "unit_price": 19.99,
    }
    assert "event_name" not in ads
    assert "additional_event_parameters" not in ads
    assert len(ads["user_data"]["user_identifiers"]) == 2
    assert refusals(request, NOW) == []


@pytest.mark.parametrize(
    "change",
    ["no_transaction", "no_user_data", "ad_user_data_denied", "other_event"],
)
def test_no_ads_copy_without_what_ads_needs(change: str) -> None:
    """No transaction id, no identifiers, ad_user_data denied or another name: GA4 only."""
    destination = DataManagerDestination("1", "G-SHOP", ads_conversions={"purchase": ADS})
    event = enriched("page_view" if change == "other_event" else "purchase")
    if change == "ad_user_data_denied":
        event["resolved"]["consent"] = {"ad_user_data": "denied"}
    body = body_of(event)
    if change == "no_transaction":
        body["events"][-1]["params"].pop("transaction_id")
    if change == "no_user_data":
        body.pop("user_data", None)
    request = ingest_request(body, destination)
    assert len(request["destinations"]) == 1
    assert all(e["destination_references"] == ["ga4"] for e in request["events"])


def test_every_fixture_event_maps_without_a_foreseen_refusal() -> None:
    """Each realistic event maps to a request the API's checkable rules accept."""
    events = json.loads(FIXTURE.read_text(encoding="utf-8"))["events"]
    for raw in events:
        if not raw.get("event_name") or not raw.get("client_id"):
            continue
        event = enriched(raw["event_name"])
        assert refusals(request_of(event), NOW) == [], raw["event_name"]


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ("old", "EVENT_TIME_INVALID", "events[0].event_timestamp"),
        ("no_time", "REQUIRED_FIELD_MISSING", "events[0].event_timestamp"),
        ("no_client", "REQUIRED_FIELD_MISSING", "events[0].client_id"),
        ("reserved_event", "INVALID_EVENT_NAME", "events[0].event_name"),
        (
            "reserved_param",
            "RESERVED_NAME_USED",
            "events[0].additional_event_parameters[0].parameter_name",
        ),
        ("currency", "INVALID_CURRENCY_CODE", "events[0].currency"),
        ("identifiers", "TOO_MANY_ELEMENTS", "events[0].user_data.user_identifiers"),
        ("region", "INVALID_REGION_CODE", "events[0].event_location.region_code"),
    ],
)
def test_refusals_name_the_apis_reason_and_field(change: str, reason: str, field: str) -> None:
    """What the API refuses and can be foreseen, with its ErrorReason and field path."""
    event: dict[str, Any] = {
        "destination_references": ["ga4"],
        "event_timestamp": rfc3339(NOW),
        "event_name": "page_view",
        "client_id": "1.2",
    }
    if change == "old":
        event["event_timestamp"] = rfc3339(NOW - 73 * 3_600_000_000)
    elif change == "no_time":
        del event["event_timestamp"]
    elif change == "no_client":
        del event["client_id"]
    elif change == "reserved_event":
        event["event_name"] = "session_start"
    elif change == "reserved_param":
        event["additional_event_parameters"] = [{"parameter_name": "ga_x", "value": "1"}]
    elif change == "currency":
        event["currency"] = "euro"
    elif change == "identifiers":
        event["user_data"] = {"user_identifiers": [{"email_address": "a" * 64}] * 11}
    elif change == "region":
        event["event_location"] = {"region_code": "Brazil"}
    request = {
        "destinations": [
            {"reference": "ga4", "operating_account": {"account_type": "GOOGLE_ANALYTICS_PROPERTY"}}
        ],
        "events": [event],
    }
    found = refusals(request, NOW)
    assert [(r.reason, r.field) for r in found] == [(reason, field)]


def test_an_ads_event_without_transaction_id_or_identifiers_is_refused() -> None:
    """Ads wants a transaction id beside the tag's conversion, and identifiers."""
    request = {
        "destinations": [{"reference": "ads", "operating_account": {"account_type": "GOOGLE_ADS"}}],
        "events": [{"destination_references": ["ads"], "event_timestamp": rfc3339(NOW)}],
    }
    reasons = [r.reason for r in refusals(request, NOW)]
    assert reasons == ["REQUIRED_FIELD_MISSING", "NO_IDENTIFIERS_PROVIDED"]


def test_dead_letter_reasons_are_the_apis_in_snake_case() -> None:
    """data_manager_ + the ErrorReason, the same whoever found it."""
    assert dead_letter_reason("EVENT_TIME_INVALID") == "data_manager_event_time_invalid"
    assert dead_letter_reason("") == "data_manager_rejected"


def test_ads_conversions_parse_and_refuse_with_the_broken_part() -> None:
    """Hyphenated customer ids are accepted; unknown fields and non-digits are not."""
    parsed = ads_conversions_from_json(
        {"purchase": {"customer_id": "123-456-7890", "conversion_action_id": 987}}
    )
    assert parsed == {"purchase": AdsConversion("1234567890", "987")}
    for bad in (
        [],
        {"purchase": "x"},
        {"purchase": {"customer_id": "1"}},
        {"purchase": {"customer_id": "1", "conversion_action_id": "2", "extra": 1}},
        {"purchase": {"customer_id": "abc", "conversion_action_id": "2"}},
        {"bad name": {"customer_id": "1", "conversion_action_id": "2"}},
    ):
        with pytest.raises((TypeError, ValueError)):
            ads_conversions_from_json(bad)


def test_a_data_manager_stream_without_a_property_fails_the_plan() -> None:
    """A missing property id is a SettingsError when the plan is made, not per event."""
    with pytest.raises(SettingsError, match="G-B"):
        DestinationPlan(
            default="data_manager",
            data_manager={"G-A": DataManagerDestination("1", "G-A")},
            measurement_ids=frozenset({"G-A", "G-B"}),
        )


def test_the_plan_routes_each_stream_to_its_destination() -> None:
    """Per-stream overrides beat the default."""
    plan = DestinationPlan(
        streams={"G-B": "data_manager"},
        data_manager={"G-B": DataManagerDestination("1", "G-B")},
        measurement_ids=frozenset({"G-A", "G-B"}),
    )
    assert plan.destination_of("G-A") == "measurement_protocol"
    assert plan.destination_of("G-B") == "data_manager"
    assert plan.uses_data_manager
    assert plan.uses_measurement_protocol


BASE_ENV = {"GOOGLE_CLOUD_PROJECT": "p", "GA4_MEASUREMENT_ID": "G-A", "GA4_API_SECRET": "s"}


def test_settings_default_to_the_measurement_protocol() -> None:
    """GA4_DESTINATION unset: measurement_protocol, the documented endpoint, no Ads."""
    ga4 = Settings.from_env(BASE_ENV).ga4
    assert ga4.destination == "measurement_protocol"
    assert ga4.data_manager_endpoint == "https://datamanager.googleapis.com"
    assert ga4.stream_destinations == {}
    assert ga4.ads_conversions == {}


def test_settings_read_every_data_manager_variable() -> None:
    """Destination, per-stream choice, property ids, endpoint and Ads conversions."""
    env = BASE_ENV | {
        "GA4_DESTINATION": "data_manager",
        "GA4_STREAM_DESTINATIONS": '{"G-B": "measurement_protocol"}',
        "GA4_PROPERTY_ID": "123",
        "GA4_STREAM_PROPERTIES": '{"G-C": "456"}',
        "DATA_MANAGER_ENDPOINT": "http://127.0.0.1:9/",
        "DATA_MANAGER_ADS_CONVERSIONS": '{"purchase": {"customer_id": "1234567890", '
        '"conversion_action_id": "9", "login_customer_id": "111"}}',
    }
    ga4 = Settings.from_env(env).ga4
    assert ga4.destination == "data_manager"
    assert ga4.stream_destinations == {"G-B": "measurement_protocol"}
    assert ga4.stream_property("G-A") == "123"
    assert ga4.stream_property("G-C") == "456"
    assert ga4.stream_property("G-B") is None
    assert ga4.data_manager_endpoint == "http://127.0.0.1:9"
    assert ga4.ads_conversions["purchase"] == AdsConversion("1234567890", "9", "111")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GA4_DESTINATION", "bigquery"),
        ("GA4_STREAM_DESTINATIONS", '{"G-B": "mp"}'),
        ("GA4_PROPERTY_ID", "properties/123"),
        ("GA4_STREAM_PROPERTIES", '{"G-B": "x1"}'),
        ("DATA_MANAGER_ADS_CONVERSIONS", '{"purchase": {"customer_id": "1"}}'),
        ("DATA_MANAGER_ADS_CONVERSIONS", "{not json"),
    ],
)
def test_bad_data_manager_settings_name_their_variable(name: str, value: str) -> None:
    """Each malformed variable is a SettingsError that names it."""
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(BASE_ENV | {name: value})
