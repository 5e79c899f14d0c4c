"""Data Manager API requests read back as the Measurement Protocol hits GA4 records.

Each case is the field-mapping page read from right to left; the last test runs what
``ga4_stitch.parity`` reports for a rebuilt body.
"""

from __future__ import annotations

from typing import Any

from ga4_stitch.datamanager_hits import (
    ads_conversions,
    parameter_value,
    request_body,
    request_hits,
    timestamp_micros,
)
from ga4_stitch.parity import report_requests

GA4 = {
    "reference": "ga4",
    "operatingAccount": {"accountType": "GOOGLE_ANALYTICS_PROPERTY", "accountId": "1"},
    "productDestinationId": "G-ONE",
}
ADS = {
    "reference": "ads",
    "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
    "productDestinationId": "555",
}
WHEN = "2026-03-01T10:00:00.250000Z"
WHEN_MICROS = 1772359200250000


def event(**fields: Any) -> dict[str, Any]:
    return {
        "destinationReferences": ["ga4"],
        "eventTimestamp": WHEN,
        "eventName": "purchase",
        "clientId": "c.1",
        **fields,
    }


def body_of(*events: dict[str, Any], **request: Any) -> dict[str, Any]:
    _, body = request_body({"destinations": [GA4, ADS], "events": list(events), **request})
    assert body is not None
    return body


def test_an_rfc3339_timestamp_reads_as_unix_microseconds() -> None:
    """Fractions to the microsecond; offsets honoured; nonsense is None."""
    assert timestamp_micros(WHEN) == WHEN_MICROS
    assert timestamp_micros("2026-03-01T11:00:00.25+01:00") == WHEN_MICROS
    assert timestamp_micros("2026-03-01T10:00:00Z") == WHEN_MICROS - 250000
    assert timestamp_micros("yesterday") is None
    assert timestamp_micros(None) is None


def test_parameter_values_read_as_the_numbers_they_spell() -> None:
    """Whole and decimal numbers become numbers; other text stays text."""
    assert parameter_value("17") == 17
    assert parameter_value("-3") == -3
    assert parameter_value("65.32") == 65.32
    assert parameter_value("007") == "007"
    assert parameter_value("1e3") == "1e3"
    assert parameter_value("Stan Tee") == "Stan Tee"


def test_identity_time_and_name_map_back_to_the_request_fields() -> None:
    """client_id, user_id, timestamp_micros (request and event), event name."""
    body = body_of(event(userId="u-9"))

    assert body["client_id"] == "c.1"
    assert body["user_id"] == "u-9"
    assert body["timestamp_micros"] == WHEN_MICROS
    assert body["events"][0]["name"] == "purchase"
    assert body["events"][0]["timestamp_micros"] == WHEN_MICROS


def test_event_parameters_and_structured_fields_become_params() -> None:
    """additional parameters, transaction id, currency, value, coupon and items."""
    body = body_of(
        event(
            transactionId="T-1",
            currency="EUR",
            conversionValue=30.5,
            additionalEventParameters=[
                {"parameterName": "session_id", "value": "1700000000"},
                {"parameterName": "engagement_time_msec", "value": "1200"},
                {"parameterName": "page_location", "value": "https://shop.example/"},
            ],
            cartData={
                "couponCodes": ["SUMMER"],
                "items": [
                    {
                        "itemId": "SKU1",
                        "quantity": "2",
                        "unitPrice": 15.25,
                        "additionalItemParameters": [
                            {"parameterName": "item_name", "value": "Tee"}
                        ],
                    }
                ],
            },
        )
    )

    assert body["events"][0]["params"] == {
        "session_id": 1700000000,
        "engagement_time_msec": 1200,
        "page_location": "https://shop.example/",
        "transaction_id": "T-1",
        "currency": "EUR",
        "value": 30.5,
        "coupon": "SUMMER",
        "items": [{"item_id": "SKU1", "quantity": 2, "price": 15.25, "item_name": "Tee"}],
    }


def test_consent_maps_back_and_the_request_level_applies_when_the_event_is_silent() -> None:
    """CONSENT_GRANTED/DENIED -> GRANTED/DENIED, event-level first."""
    own = body_of(event(consent={"adUserData": "CONSENT_DENIED"}))
    shared = body_of(
        event(),
        consent={"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_DENIED"},
    )

    assert own["consent"] == {"ad_user_data": "DENIED"}
    assert shared["consent"] == {"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}


def test_user_properties_and_user_data_map_back() -> None:
    """additionalUserProperties -> {name: {value}}; identifiers -> user_data lists."""
    body = body_of(
        event(
            userProperties={
                "additionalUserProperties": [{"propertyName": "plan", "value": "gold"}]
            },
            userData={
                "userIdentifiers": [
                    {"emailAddress": "a" * 64},
                    {"phoneNumber": "b" * 64},
                    {"address": {"givenName": "c" * 64, "regionCode": "US", "postalCode": "94043"}},
                ]
            },
        )
    )

    assert body["user_properties"] == {"plan": {"value": "gold"}}
    assert body["user_data"] == {
        "sha256_email_address": ["a" * 64],
        "sha256_phone_number": ["b" * 64],
        "address": [{"sha256_first_name": "c" * 64, "postal_code": "94043", "country": "US"}],
    }


def test_device_and_location_map_back() -> None:
    """eventDeviceInfo -> device, user_agent, ip_override; eventLocation -> user_location."""
    body = body_of(
        event(
            eventDeviceInfo={
                "category": "mobile",
                "browser": "Chrome",
                "browserVersion": "120.0",
                "operatingSystem": "Android",
                "operatingSystemVersion": "14",
                "brand": "Google",
                "model": "Pixel 8",
                "languageCode": "en",
                "screenWidth": 412,
                "screenHeight": 915,
                "userAgent": "Mozilla/5.0",
                "ipAddress": "203.0.113.0",
            },
            eventLocation={
                "city": "Sao Paulo",
                "subdivisionCode": "BR-SP",
                "regionCode": "BR",
                "subcontinentCode": "005",
                "continentCode": "019",
            },
        )
    )

    assert body["device"] == {
        "category": "mobile",
        "brand": "Google",
        "model": "Pixel 8",
        "operating_system": "Android",
        "operating_system_version": "14",
        "browser": "Chrome",
        "browser_version": "120.0",
        "language": "en",
        "screen_resolution": "412x915",
    }
    assert body["user_agent"] == "Mozilla/5.0"
    assert body["ip_override"] == "203.0.113.0"
    assert body["user_location"] == {
        "city": "Sao Paulo",
        "region_id": "BR-SP",
        "country_id": "BR",
        "subcontinent_id": "005",
        "continent_id": "019",
    }


def test_only_events_bound_for_ga4_become_hits_and_ads_events_are_listed_apart() -> None:
    """An Ads copy is not a GA4 hit; an event naming no destination goes to all of them."""
    request = {
        "destinations": [GA4, ADS],
        "events": [
            event(),
            {**event(), "destinationReferences": ["ads"], "transactionId": "T-1"},
            {k: v for k, v in event(eventName="page_view").items() if k != "destinationReferences"},
        ],
    }

    hits = request_hits(request)

    assert [(mid, body["events"][0]["name"]) for mid, body in hits] == [
        ("G-ONE", "purchase"),
        ("G-ONE", "page_view"),
    ]
    assert ads_conversions(request) == [
        {
            "customer_id": "1234567890",
            "conversion_action_id": "555",
            "event_name": "purchase",
            "transaction_id": "T-1",
        },
        {
            "customer_id": "1234567890",
            "conversion_action_id": "555",
            "event_name": "page_view",
            "transaction_id": None,
        },
    ]


def test_a_request_without_ga4_events_has_no_body() -> None:
    """Nothing for GA4: no measurement id, no body."""
    assert request_body({"destinations": [ADS], "events": [event()]}) == (None, None)
    assert request_body("not a request") == (None, None)


def test_a_rebuilt_body_reports_like_the_mp_body_it_stands_for() -> None:
    """campaign_details then the event: parity reads source, device, country, session."""
    campaign = event(
        eventName="campaign_details",
        additionalEventParameters=[
            {"parameterName": "source", "value": "google"},
            {"parameterName": "medium", "value": "cpc"},
        ],
    )
    page = event(
        eventName="page_view",
        eventDeviceInfo={"category": "desktop", "browser": "Firefox", "operatingSystem": "Linux"},
        eventLocation={"regionCode": "DE"},
        additionalEventParameters=[
            {"parameterName": "session_id", "value": "42"},
            {"parameterName": "engagement_time_msec", "value": "900"},
        ],
    )

    [report] = report_requests([body_of(campaign, page)])

    assert report["event_name"] == "page_view"
    assert report["device_category"] == "desktop"
    assert report["browser"] == "Firefox"
    assert report["operating_system"] == "Linux"
    assert report["country"] == "DE"
    assert report["session_id"] == 42
    assert report["engagement_time_msec"] == 900
    assert report["session_source"] == {"source": "google", "medium": "cpc", "campaign": None}
