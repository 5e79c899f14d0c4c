"""Enriched event -> Measurement Protocol body."""

from __future__ import annotations

from typing import Any

import pytest

from ga4_stitch.agents import AGENTS_BY_NAME
from shared.bootstrap import payload_rules
from shared.domain.measurement import (
    PayloadRules,
    build_request,
    engagement_time,
    route_stream,
)
from shared.domain.validation import validate
from shared.errors import InvalidEvent
from shared.settings import Settings

RULES = PayloadRules(default_measurement_id="G-DEFAULT")


def enriched(**raw: Any) -> dict[str, Any]:
    resolved = {
        "event_id": "e-1",
        "event_name": "page_view",
        "timestamp_micros": 1_763_800_154_000_000,
        "stream_id": None,
        "client_id": "1768696203.1712345678",
        "user_id": None,
        "session_id": 1_763_800_154,
        "session_number": 3,
        "consent": {
            "analytics_storage": "granted",
            "ad_storage": "granted",
            "ad_user_data": None,
            "ad_personalization": None,
        },
    }
    resolved.update(raw.pop("resolved", {}))
    return {
        "event_name": "page_view",
        "client_id": "GA1.1.1768696203.1712345678",
        **raw,
        "resolved": resolved,
    }


def params_of(event: dict[str, Any], rules: PayloadRules = RULES) -> dict[str, Any]:
    return dict(build_request(event, rules).body["events"][0]["params"])


def test_uses_the_canonical_client_id_and_resolved_time() -> None:
    """client_id and timestamp_micros come from resolved, not from the raw event."""
    body = build_request(enriched(), RULES).body
    assert body["client_id"] == "1768696203.1712345678"
    assert body["timestamp_micros"] == 1_763_800_154_000_000
    assert body["events"][0]["name"] == "page_view"


def test_sends_user_id_only_when_resolved() -> None:
    """A raw user_id the resolver cleared is never sent; a resolved one is."""
    assert "user_id" not in build_request(enriched(user_id="raw-user"), RULES).body
    body = build_request(enriched(resolved={"user_id": "cust-1"}), RULES).body
    assert body["user_id"] == "cust-1"


def test_session_parameters_are_integers_and_come_first() -> None:
    """session_id (int), engagement_time_msec and session_number lead the parameters."""
    params = params_of(enriched(ga_session_id="111", custom="x"))
    assert list(params)[:3] == ["session_id", "engagement_time_msec", "session_number"]
    assert params["session_id"] == 1_763_800_154
    assert params["session_number"] == 3


def test_cookieless_event_has_no_session_parameters() -> None:
    """With analytics storage denied the resolver kept no session: none is invented."""
    params = params_of(enriched(resolved={"session_id": None, "session_number": None}))
    assert "session_id" not in params
    assert "session_number" not in params
    assert params["engagement_time_msec"] > 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(2500, 2500), ("1200", 1200), (0, 100), (-5, 100), (None, 100), ("abc", 100), (True, 100)],
)
def test_engagement_time_is_the_events_own_positive_value_or_the_default(
    raw: object, expected: int
) -> None:
    """engagement_time_msec is always > 0."""
    assert engagement_time(raw, 100) == expected


def test_page_parameters_are_passed() -> None:
    """page_location, page_referrer and page_title become event parameters."""
    params = params_of(
        enriched(
            page_location="https://shop.example/a", page_referrer="https://g.co/", page_title="A"
        )
    )
    assert params["page_location"] == "https://shop.example/a"
    assert params["page_referrer"] == "https://g.co/"
    assert params["page_title"] == "A"


def test_transport_and_system_fields_never_become_parameters() -> None:
    """x-ga-*, x-sst-*, gtm.*, ids, timestamps, consent, PII and linker fields stay out."""
    params = params_of(
        enriched(
            **{
                "x-ga-gcs": "G111",
                "x-sst-system_properties": {},
                "gtm.start": 1,
                "event_id": "e-1",
                "event_timestamp": 1,
                "ga_session_id": "1",
                "ga_session_number": "2",
                "user_data": {"email": "a@b.co"},
                "ip_override": "1.2.3.4",
                "user_agent": "UA",
                "_gl": "1*abc",
                "_gs_link": "tok",
                "currency": "EUR",
            }
        ),
        PayloadRules(default_measurement_id="G-DEFAULT", ignored_params=frozenset({"_gs_link"})),
    )
    assert set(params) == {"session_id", "engagement_time_msec", "session_number", "currency"}


def test_deny_list_removes_parameters_including_page_ones() -> None:
    """A denied parameter is never sent, whatever its source."""
    rules = PayloadRules(default_measurement_id="G", param_deny=frozenset({"page_title", "email"}))
    params = params_of(enriched(page_title="T", email="x", plan="gold"), rules)
    assert "page_title" not in params
    assert "email" not in params
    assert params["plan"] == "gold"


def test_allow_list_keeps_only_named_custom_parameters() -> None:
    """With an allow list, other custom parameters are dropped; session ones are kept."""
    rules = PayloadRules(default_measurement_id="G", param_allow=frozenset({"plan"}))
    params = params_of(enriched(plan="gold", other="x", page_location="https://a.example/"), rules)
    assert params["plan"] == "gold"
    assert "other" not in params
    assert {"session_id", "engagement_time_msec", "page_location"} <= set(params)


def test_renames_map_raw_names_to_ga4_names() -> None:
    """A renamed parameter is sent under its new name; an existing name is not overwritten."""
    rules = PayloadRules(
        default_measurement_id="G", param_renames={"productSku": "item_sku", "dup": "plan"}
    )
    params = params_of(enriched(productSku="S1", plan="gold", dup="other"), rules)
    assert params["item_sku"] == "S1"
    assert "productSku" not in params
    assert params["plan"] == "gold"


def test_items_are_passed_through() -> None:
    """Ecommerce items travel as the items parameter."""
    items = [{"item_id": "SKU1", "price": 9.5, "quantity": 1}]
    assert params_of(enriched(items=items))["items"] == items


def test_consent_maps_resolved_ad_signals() -> None:
    """ad_user_data / ad_personalization become GRANTED / DENIED; unknown ones are left out."""
    consent = {"ad_user_data": "granted", "ad_personalization": "denied"}
    body = build_request(enriched(resolved={"consent": consent}), RULES).body
    assert body["consent"] == {"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}
    assert "consent" not in build_request(enriched(), RULES).body


CHROME_MAC = AGENTS_BY_NAME["chrome-macos"]


def test_the_device_object_keeps_what_the_user_agent_and_hints_say() -> None:
    """Category, browser and OS travel in ``device`` (GA4 would ignore ``user_agent``)."""
    body = build_request(
        enriched(
            user_agent=CHROME_MAC.user_agent,
            client_hints=CHROME_MAC.client_hints,
            language="de-de",
            screen_resolution="1920x1080",
        ),
        RULES,
    ).body
    device = body["device"]
    assert device["category"] == "desktop"
    assert device["browser"] == "Chrome"
    assert device["operating_system"] == "Macintosh"
    assert device["operating_system_version"] == "15.2"
    assert device["screen_resolution"] == "1920x1080"
    assert device["language"].lower() == "de-de"
    assert "user_agent" not in body


def test_an_unknown_agent_goes_out_alone_for_ga4_to_parse() -> None:
    """No ``device`` object that would hide what the raw user agent says."""
    body = build_request(
        enriched(user_agent="SomeKiosk/1.0", language="en-us", screen_resolution="800x600"),
        RULES,
    ).body
    assert body["user_agent"] == "SomeKiosk/1.0"
    assert "device" not in body
    assert "device" not in build_request(enriched(), RULES).body


def test_event_location_becomes_user_location_and_hides_the_ip() -> None:
    """GA4 ignores ``ip_override`` once ``user_location`` is sent, so the IP stays home."""
    with_geo = build_request(
        enriched(event_location={"country": "BR", "region": "SP"}, ip_override="203.0.113.9"),
        RULES,
    ).body
    assert with_geo["user_location"]["country_id"] == "BR"
    assert with_geo["user_location"]["region_id"] == "BR-SP"
    assert "ip_override" not in with_geo
    without = build_request(enriched(ip_override="203.0.113.9"), RULES).body
    assert without["ip_override"] == "203.0.113.9"
    assert "user_location" not in without


def test_the_session_source_precedes_the_sessions_earliest_event() -> None:
    """``campaign_details`` goes first in the same request, only for the earliest event."""
    source = {"source": "news", "medium": "email", "campaign": "spring", "term": None}
    first = build_request(
        enriched(resolved={"traffic_source": source, "earliest_in_session": True}), RULES
    ).body
    assert [event["name"] for event in first["events"]] == ["campaign_details", "page_view"]
    assert first["events"][0]["params"] == {
        "source": "news",
        "medium": "email",
        "campaign": "spring",
        "session_id": 1_763_800_154,
    }
    later = build_request(enriched(resolved={"traffic_source": source}), RULES).body
    assert [event["name"] for event in later["events"]] == ["page_view"]
    assert validate(first, now_micros=1_763_800_200_000_000).sendable


def test_a_user_engagement_hit_is_forwarded_with_its_engagement_time() -> None:
    """The reserved name is replaced, the engagement time kept, nothing dead-lettered."""
    body = build_request(
        enriched(engagement_time_msec=8421, resolved={"event_name": "user_engagement"}), RULES
    ).body
    [event] = body["events"]
    assert event["name"] == "page_engagement"
    assert event["params"]["engagement_time_msec"] == 8421
    assert validate(body, now_micros=1_763_800_200_000_000).sendable


def test_flat_user_properties_user_data_and_gcd_consent_reach_mp() -> None:
    """sGTM's flat user properties, hashed user data and ad consent are all forwarded."""
    digest = "a" * 64
    body = build_request(
        enriched(
            **{"x-ga-mp2-user_properties": {"_npa": "0", "tier": "gold"}},
            user_data={"sha256_email_address": digest},
            resolved={"consent": {"ad_user_data": "granted", "ad_personalization": "granted"}},
        ),
        RULES,
    ).body
    assert body["user_properties"] == {"tier": {"value": "gold"}}
    assert body["user_data"] == {"sha256_email_address": [digest]}
    assert body["consent"] == {"ad_user_data": "GRANTED", "ad_personalization": "GRANTED"}


def test_non_personalised_ads_deny_ad_personalization() -> None:
    """``x-ga-npa=1`` wins over a granted signal."""
    body = build_request(
        enriched(
            **{"x-ga-npa": "1"},
            resolved={"consent": {"ad_user_data": "granted", "ad_personalization": "granted"}},
        ),
        RULES,
    ).body
    assert body["consent"]["ad_personalization"] == "DENIED"


def test_user_properties_take_mp_shape() -> None:
    """Plain values are wrapped as {"value": v}."""
    body = build_request(
        enriched(user_properties={"tier": "gold", "age": {"value": 3}}), RULES
    ).body
    assert body["user_properties"] == {"tier": {"value": "gold"}, "age": {"value": 3}}


@pytest.mark.parametrize(
    ("mode", "ip", "expected"),
    [
        ("pass", "203.0.113.77", "203.0.113.77"),
        ("truncate", "203.0.113.77", "203.0.113.0"),
        ("truncate", "2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
        ("truncate", "not-an-ip", None),
        ("drop", "203.0.113.77", None),
    ],
)
def test_ip_override_follows_the_ip_mode(mode: str, ip: str, expected: str | None) -> None:
    """pass keeps, truncate zeroes the host part (IPv4 /24, IPv6 /48), drop removes."""
    body = build_request(
        enriched(ip_override=ip), PayloadRules(default_measurement_id="G", ip_mode=mode)
    ).body
    assert body.get("ip_override") == expected


def test_routes_by_exact_host_then_longest_wildcard_then_default() -> None:
    """Exact hostname wins, then the longest *.suffix, else the default stream."""
    routes = {"shop.example.com": "G-SHOP", "*.example.com": "G-EX", "*.eu.example.com": "G-EU"}
    assert route_stream("https://shop.example.com/x", routes, "G-D") == "G-SHOP"
    assert route_stream("https://a.eu.example.com/", routes, "G-D") == "G-EU"
    assert route_stream("https://blog.example.com/", routes, "G-D") == "G-EX"
    assert route_stream("https://example.com/", routes, "G-D") == "G-D"
    assert route_stream(None, routes, "G-D") == "G-D"


def test_a_malformed_page_location_goes_to_the_default_stream() -> None:
    """``urlsplit`` raises on a broken IPv6 host; that must not crash the forwarder (a 500
    loop until Pub/Sub gives up) but route like a page without a host."""
    routes = {"shop.example.com": "G-SHOP"}
    assert route_stream("http://[bad/checkout", routes, "G-D") == "G-D"


def test_resolved_stream_wins_when_it_is_one_we_serve() -> None:
    """The resolver keeps sessions per stream, so its stream choice is honoured."""
    rules = PayloadRules(default_measurement_id="G-D", stream_routes={"b.example": "G-B"})
    event = enriched(page_location="https://a.example/", resolved={"stream_id": "G-B"})
    assert build_request(event, rules).measurement_id == "G-B"
    unknown = enriched(page_location="https://b.example/", resolved={"stream_id": "G-ZZZ"})
    assert build_request(unknown, rules).measurement_id == "G-B"


@pytest.mark.parametrize(
    "resolved",
    [
        None,
        {"event_name": "x", "client_id": "1.2", "timestamp_micros": 1},
        {"event_id": "e", "client_id": "1.2", "timestamp_micros": 1},
        {"event_id": "e", "event_name": "x", "timestamp_micros": 1},
        {"event_id": "e", "event_name": "x", "client_id": "1.2"},
        {"event_id": "e", "event_name": "x", "client_id": "1.2", "timestamp_micros": "1"},
        {
            "event_id": "e",
            "event_name": "x",
            "client_id": "1.2",
            "timestamp_micros": 1,
            "session_id": "abc",
        },
    ],
)
def test_an_unusable_resolved_object_is_an_invalid_event(resolved: Any) -> None:
    """Missing or mistyped resolved fields raise InvalidEvent (dead-lettered upstream)."""
    with pytest.raises(InvalidEvent) as caught:
        build_request({"resolved": resolved}, RULES)
    assert caught.value.reason == "bad_enriched_event"


def test_rules_from_settings_carry_privacy_choices() -> None:
    """PII parameters are denied and the link token parameter is ignored."""
    settings = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "GA4_MEASUREMENT_ID": "G-1",
            "GA4_API_SECRET": "s",
            "PII_PARAMETERS": "email,phone",
            "IP_MODE": "truncate",
            "GA4_PARAM_RENAMES": '{"a": "b"}',
        }
    )
    rules = payload_rules(settings)
    assert rules.param_deny == {"email", "phone"}
    assert rules.ip_mode == "truncate"
    assert rules.param_renames == {"a": "b"}
    assert settings.privacy.link_token_parameter in rules.ignored_params


def test_a_typical_event_builds_a_valid_body() -> None:
    """A realistic enriched event needs no repair."""
    event = enriched(
        page_location="https://shop.example/p?id=1",
        page_title="Product",
        language="en-us",
        ip_override="203.0.113.9",
        user_agent="Mozilla/5.0",
        currency="EUR",
        value=12.5,
        resolved={"user_id": "cust-000981", "consent": {"ad_user_data": "granted"}},
    )
    assert validate(build_request(event, RULES).body).messages == ()
