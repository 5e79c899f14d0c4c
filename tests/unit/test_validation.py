"""Every GA4 Measurement Protocol rule: what is repaired, what is fatal, in GA4's codes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared.domain.privacy import looks_like_pii
from shared.domain.validation import (
    Code,
    Validation,
    encode_body,
    parse_body,
    validate,
)

NOW = 1_763_800_154_000_000


def body_with(params: dict[str, Any] | None = None, name: str = "page_view", **top: Any) -> dict:
    body: dict[str, Any] = {"client_id": "123456.7654321"}
    body.update(top)
    body.setdefault("events", [{"name": name, "params": params if params is not None else {}}])
    return body


def problems(validation: Validation) -> list[tuple[str, Code, bool]]:
    return [(m.field_path, m.code, m.fatal) for m in validation.messages]


def params_after(params: dict[str, Any]) -> dict[str, Any]:
    return dict(validate(body_with(params)).body["events"][0]["params"])


# GA4's own documented payloads


GA4_VALID_EXAMPLES = [
    {
        "client_id": "123456.7654321",
        "events": [
            {
                "name": "campaign_details",
                "params": {
                    "campaign_id": "google_1234",
                    "campaign": "Summer_fun",
                    "source": "google",
                    "medium": "cpc",
                    "term": "summer+travel",
                    "content": "logolink",
                    "session_id": "123",
                    "engagement_time_msec": "100",
                },
            }
        ],
    },
    {
        "client_id": "XXXXXXXXXX.YYYYYYYYYY",
        "user_properties": {"customer_tier": {"value": "PREMIUM"}},
        "events": [{"name": "tutorial_begin", "params": {}}],
    },
    {
        "client_id": "123456.7654321",
        "events": [
            {
                "name": "purchase",
                "params": {
                    "currency": "USD",
                    "value": 30.03,
                    "transaction_id": "T_12345",
                    "items": [
                        {
                            "item_id": "SKU_12345",
                            "item_name": "Stan and Friends Tee",
                            "price": 10.01,
                            "quantity": 3,
                        }
                    ],
                },
            }
        ],
    },
    {
        "client_id": "123456.7654321",
        "consent": {"ad_user_data": "GRANTED", "ad_personalization": "DENIED"},
        "user_location": {
            "city": "Mountain View",
            "region_id": "US-CA",
            "country_id": "US",
            "subcontinent_id": "021",
            "continent_id": "019",
        },
        "ip_override": "203.0.113.10",
        "device": {
            "category": "mobile",
            "language": "en",
            "screen_resolution": "1280x2856",
            "operating_system": "Android",
            "operating_system_version": "14",
            "model": "Pixel 9 Pro",
            "brand": "Google",
            "browser": "Chrome",
            "browser_version": "136.0.7103.60",
        },
        "user_agent": "Mozilla/5.0 (Linux; Android 14)",
        "events": [
            {
                "name": "login",
                "params": {"method": "Google", "session_id": "123", "engagement_time_msec": 100},
            }
        ],
    },
]


@pytest.mark.parametrize("example", GA4_VALID_EXAMPLES)
def test_ga4_documented_valid_payloads_pass_untouched(example: dict[str, Any]) -> None:
    """GA4's own valid examples give no message and are not changed."""
    validation = validate(example)
    assert validation.messages == ()
    assert validation.body == example


def test_ga4_documented_invalid_event_name_gives_ga4s_message() -> None:
    """GA4's _badEventName example: fieldPath events, NAME_INVALID, the same description."""
    example = {"client_id": "x.y", "events": [{"name": "_badEventName", "params": {}}]}
    (message,) = validate(example).messages
    assert message.as_ga4()["fieldPath"] == "events"
    assert message.as_ga4()["validationCode"] == "NAME_INVALID"
    assert message.description.startswith(
        "Event at index: [0] has invalid name [_badEventName]. Names must start with an "
        "alphabetic character"
    )
    assert message.fatal


# Body and top level


def test_a_body_that_is_not_an_object_is_fatal() -> None:
    """A JSON array or string cannot be a request."""
    assert problems(validate(["x"]))[0] == ("", Code.VALUE_INVALID, True)


def test_unknown_top_level_fields_are_dropped() -> None:
    """Fields GA4 does not define are removed and reported."""
    validation = validate(body_with(shoe_size=42))
    assert "shoe_size" not in validation.body
    assert problems(validation) == [("shoe_size", Code.NAME_INVALID, False)]


@pytest.mark.parametrize(
    ("client_id", "code"),
    [(None, Code.VALUE_REQUIRED), ("", Code.VALUE_REQUIRED), (12, Code.VALUE_INVALID)],
)
def test_client_id_is_required_and_a_string(client_id: Any, code: Code) -> None:
    """Without a usable client_id nothing can be sent."""
    body = body_with()
    body["client_id"] = client_id
    assert ("client_id", code, True) in problems(validate(body))


def test_user_id_may_hold_256_characters_not_257() -> None:
    """A longer user_id cannot be shortened without becoming another user: fatal."""
    assert validate(body_with(user_id="u" * 256)).messages == ()
    assert problems(validate(body_with(user_id="u" * 257))) == [
        ("user_id", Code.VALUE_OUT_OF_BOUNDS, True)
    ]


@pytest.mark.parametrize(
    "user_id", ["jane.doe@example.com", "+49 30 1234567", "(555) 123-4567", "+14155552671"]
)
def test_a_pii_looking_user_id_is_fatal(user_id: str) -> None:
    """GA4 forbids PII in user_id: an email or phone number is never sent."""
    assert problems(validate(body_with(user_id=user_id))) == [("user_id", Code.VALUE_INVALID, True)]


@pytest.mark.parametrize(
    "user_id",
    [
        "cust-000981",
        "12345678901",
        "u_" + "ab" * 32,
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ],
)
def test_pseudonymous_user_ids_pass(user_id: str) -> None:
    """Customer numbers and hashes are not PII-looking."""
    assert not looks_like_pii(user_id)
    assert validate(body_with(user_id=user_id)).messages == ()


def test_an_empty_user_id_is_dropped_and_a_non_string_one_is_fatal() -> None:
    """Empty means anonymous; a number is a contract breach."""
    validation = validate(body_with(user_id=""))
    assert "user_id" not in validation.body
    assert validation.sendable
    assert problems(validate(body_with(user_id=42))) == [("user_id", Code.VALUE_INVALID, True)]


def test_timestamp_micros_must_be_an_integer_within_72_hours() -> None:
    """GA4 backdates at most 72 h; older or mistyped timestamps are fatal."""
    hour = 3_600_000_000
    assert validate(body_with(timestamp_micros=NOW - 71 * hour), now_micros=NOW).messages == ()
    assert problems(validate(body_with(timestamp_micros=NOW - 73 * hour), now_micros=NOW)) == [
        ("timestamp_micros", Code.VALUE_OUT_OF_BOUNDS, True)
    ]
    assert problems(validate(body_with(timestamp_micros="1"))) == [
        ("timestamp_micros", Code.VALUE_INVALID, True)
    ]


# Events


@pytest.mark.parametrize("events", [None, [], "page_view"])
def test_at_least_one_event_is_required(events: Any) -> None:
    """A request without events is fatal."""
    assert ("events", Code.VALUE_REQUIRED, True) in problems(validate(body_with(events=events)))


def test_a_request_holds_at_most_25_events() -> None:
    """26 events are fatal (dropping events would lose data); 25 pass."""
    event = {"name": "tick", "params": {}}
    assert validate(body_with(events=[event] * 25)).messages == ()
    assert problems(validate(body_with(events=[event] * 26))) == [
        ("events", Code.EXCEEDED_MAX_ENTITIES, True)
    ]


def test_an_event_that_is_not_an_object_is_fatal() -> None:
    """Events are objects."""
    assert problems(validate(body_with(events=["page_view"]))) == [
        ("events[0]", Code.VALUE_INVALID, True)
    ]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        (None, Code.VALUE_REQUIRED),
        ("", Code.VALUE_REQUIRED),
        ("_badEventName", Code.NAME_INVALID),
        ("1st_event", Code.NAME_INVALID),
        ("page view", Code.NAME_INVALID),
        ("page-view", Code.NAME_INVALID),
        ("e" * 41, Code.NAME_INVALID),
        (7, Code.NAME_INVALID),
        ("session_start", Code.NAME_RESERVED),
        ("first_visit", Code.NAME_RESERVED),
        ("user_engagement", Code.NAME_RESERVED),
        ("error", Code.NAME_RESERVED),
        ("ad_click", Code.NAME_RESERVED),
        ("app_remove", Code.NAME_RESERVED),
        ("notification_open", Code.NAME_RESERVED),
        ("firebase_custom", Code.NAME_RESERVED),
        ("ga_custom", Code.NAME_RESERVED),
        ("google_custom", Code.NAME_RESERVED),
    ],
)
def test_a_bad_or_reserved_event_name_is_fatal(name: Any, code: Code) -> None:
    """An event name is never rewritten: a bad one makes the request unsendable."""
    body = body_with()
    body["events"][0]["name"] = name
    assert problems(validate(body)) == [("events", code, True)]


def test_event_names_may_hold_40_characters() -> None:
    """40 characters of letters, digits and underscores pass."""
    assert validate(body_with(name="e" * 39 + "1")).messages == ()


def test_unknown_event_fields_are_dropped() -> None:
    """Only name, params and timestamp_micros belong in an event."""
    body = body_with()
    body["events"][0]["colour"] = "red"
    validation = validate(body)
    assert "colour" not in validation.body["events"][0]
    assert problems(validation) == [("events[0].colour", Code.NAME_INVALID, False)]


def test_params_that_are_not_an_object_are_fatal() -> None:
    """params must be an object."""
    assert problems(validate(body_with(params=["a"]))) == [  # type: ignore[arg-type]
        ("events[0].params", Code.VALUE_INVALID, True)
    ]


# Parameters


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("_private", Code.NAME_INVALID),
        ("gtag.config", Code.NAME_INVALID),
        ("has space", Code.NAME_INVALID),
        ("9lives", Code.NAME_INVALID),
        ("p" * 41, Code.NAME_INVALID),
        ("ga_session_id", Code.NAME_RESERVED),
        ("google_thing", Code.NAME_RESERVED),
        ("firebase_thing", Code.NAME_RESERVED),
        ("firebase_conversion", Code.NAME_RESERVED),
    ],
)
def test_a_bad_or_reserved_parameter_is_dropped(name: str, code: Code) -> None:
    """The offending parameter goes; the event is still sent."""
    validation = validate(body_with({name: "x", "plan": "gold"}))
    assert validation.body["events"][0]["params"] == {"plan": "gold"}
    assert problems(validation) == [(f"events[0].params.{name}", code, False)]


def test_parameter_names_may_hold_40_characters() -> None:
    """A 40-character name passes."""
    assert params_after({"p" * 40: 1}) == {"p" * 40: 1}


@pytest.mark.parametrize(
    ("name", "limit"),
    [("plan", 100), ("page_location", 1000), ("page_referrer", 420), ("page_title", 300)],
)
def test_string_values_are_truncated_at_their_limit(name: str, limit: int) -> None:
    """Values hold 100 characters, page_location 1000, page_referrer 420, page_title 300."""
    assert validate(body_with({name: "v" * limit})).messages == ()
    validation = validate(body_with({name: "v" * (limit + 1)}))
    assert validation.body["events"][0]["params"][name] == "v" * limit
    assert problems(validation) == [(f"events[0].params.{name}", Code.VALUE_OUT_OF_BOUNDS, False)]


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], None, float("nan"), float("inf")])
def test_values_that_are_not_strings_or_numbers_are_dropped(value: Any) -> None:
    """Objects, lists (other than items), null and non-finite numbers are not parameters."""
    validation = validate(body_with({"bad": value, "ok": 1}))
    assert validation.body["events"][0]["params"] == {"ok": 1}
    assert problems(validation) == [("events[0].params.bad", Code.VALUE_INVALID, False)]


def test_an_event_keeps_its_first_25_valid_parameters() -> None:
    """The 26th parameter is dropped; dropped invalid ones do not count."""
    params = {"_bad": 1, **{f"p{i}": i for i in range(26)}}
    validation = validate(body_with(params))
    kept = validation.body["events"][0]["params"]
    assert list(kept) == [f"p{i}" for i in range(25)]
    assert ("events[0].params.p25", Code.EXCEEDED_MAX_ENTITIES, False) in problems(validation)
    assert validate(body_with({f"p{i}": i for i in range(25)})).messages == ()


@pytest.mark.parametrize("session_id", [1763800154, "1763800154"])
def test_session_id_may_be_a_number_or_its_digits(session_id: Any) -> None:
    """GA4 takes session_id as a number (its own examples send the digits as text)."""
    assert validate(body_with({"session_id": session_id})).messages == ()


@pytest.mark.parametrize("session_id", ["abc", -5, 0, 1.5, True, "12a"])
def test_a_session_id_that_is_not_a_positive_whole_number_is_fatal(session_id: Any) -> None:
    """Dropping it would silently break the session: the request is not sent."""
    assert problems(validate(body_with({"session_id": session_id}))) == [
        ("events[0].params.session_id", Code.VALUE_INVALID, True)
    ]


@pytest.mark.parametrize("value", [0, -100, "abc", "0"])
def test_a_non_positive_engagement_time_is_dropped(value: Any) -> None:
    """engagement_time_msec must be > 0 to count the user active."""
    validation = validate(body_with({"engagement_time_msec": value}))
    assert validation.body["events"][0]["params"] == {}
    assert problems(validation) == [
        ("events[0].params.engagement_time_msec", Code.VALUE_INVALID, False)
    ]


# Items


def item(**extra: Any) -> dict[str, Any]:
    return {"item_id": "SKU", **extra}


def test_items_must_be_a_list() -> None:
    """A non-list items parameter is dropped."""
    validation = validate(body_with({"items": {"item_id": "x"}}))
    assert validation.body["events"][0]["params"] == {}
    assert problems(validation) == [("events[0].params.items", Code.VALUE_INVALID, False)]


def test_at_most_200_items_are_kept() -> None:
    """Items beyond 200 are dropped."""
    validation = validate(body_with({"items": [item()] * 201}))
    assert len(validation.body["events"][0]["params"]["items"]) == 200
    assert problems(validation) == [("events[0].params.items", Code.EXCEEDED_MAX_ENTITIES, False)]


def test_an_item_needs_an_id_or_a_name_and_must_be_an_object() -> None:
    """Items without item_id and item_name, or not objects, are dropped."""
    validation = validate(body_with({"items": [{"price": 1}, "SKU", item(), {"item_name": "N"}]}))
    assert validation.body["events"][0]["params"]["items"] == [item(), {"item_name": "N"}]
    assert problems(validation) == [
        ("events[0].params.items[0]", Code.VALUE_REQUIRED, False),
        ("events[0].params.items[1]", Code.VALUE_INVALID, False),
    ]


def test_item_parameters_follow_parameter_rules() -> None:
    """Bad names are dropped and long values truncated inside items too."""
    validation = validate(body_with({"items": [item(_x=1, item_name="n" * 101, nested={"a": 1})]}))
    assert validation.body["events"][0]["params"]["items"] == [item(item_name="n" * 100)]
    assert {code for _, code, _ in problems(validation)} == {
        Code.NAME_INVALID,
        Code.VALUE_OUT_OF_BOUNDS,
        Code.VALUE_INVALID,
    }


def test_an_item_keeps_at_most_10_custom_parameters() -> None:
    """Standard item parameters do not count; the 11th custom one is dropped."""
    custom = {f"c{i}": i for i in range(11)}
    validation = validate(body_with({"items": [item(price=1, quantity=2, **custom)]}))
    kept = validation.body["events"][0]["params"]["items"][0]
    assert set(kept) == {"item_id", "price", "quantity", *(f"c{i}" for i in range(10))}
    assert problems(validation) == [
        ("events[0].params.items[0].c10", Code.EXCEEDED_MAX_ENTITIES, False)
    ]


# User properties


def props(**values: Any) -> dict[str, Any]:
    return {name: {"value": value} for name, value in values.items()}


def test_user_properties_must_be_an_object_of_value_objects() -> None:
    """A wrong shape is dropped."""
    validation = validate(body_with(user_properties={"tier": "gold", **props(ok=1)}))
    assert validation.body["user_properties"] == props(ok=1)
    assert problems(validation) == [("user_properties.tier", Code.VALUE_INVALID, False)]
    assert problems(validate(body_with(user_properties=["x"]))) == [
        ("user_properties", Code.VALUE_INVALID, False)
    ]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("u" * 25, Code.NAME_INVALID),
        ("_tier", Code.NAME_INVALID),
        ("user_id", Code.NAME_RESERVED),
        ("first_open_time", Code.NAME_RESERVED),
        ("first_visit_time", Code.NAME_RESERVED),
        ("ga_tier", Code.NAME_RESERVED),
        ("google_tier", Code.NAME_RESERVED),
        ("firebase_tier", Code.NAME_RESERVED),
    ],
)
def test_a_bad_or_reserved_user_property_is_dropped(name: str, code: Code) -> None:
    """Names hold 24 characters and avoid reserved names and prefixes."""
    validation = validate(body_with(user_properties=props(**{name: "x"})))
    assert validation.body["user_properties"] == {}
    assert problems(validation) == [(f"user_properties.{name}", code, False)]
    assert validate(body_with(user_properties=props(**{"u" * 24: "x"}))).messages == ()


def test_user_property_values_are_truncated_at_36_characters() -> None:
    """Values hold 36 characters."""
    assert validate(body_with(user_properties=props(tier="t" * 36))).messages == ()
    validation = validate(body_with(user_properties=props(tier="t" * 37)))
    assert validation.body["user_properties"] == props(tier="t" * 36)
    assert problems(validation) == [("user_properties.tier.value", Code.VALUE_OUT_OF_BOUNDS, False)]


def test_at_most_25_user_properties_are_kept() -> None:
    """The 26th user property is dropped."""
    validation = validate(body_with(user_properties=props(**{f"p{i}": i for i in range(26)})))
    assert len(validation.body["user_properties"]) == 25
    assert problems(validation) == [("user_properties.p25", Code.EXCEEDED_MAX_ENTITIES, False)]


# Consent, location, device, IP, size


def test_consent_values_are_granted_or_denied() -> None:
    """Other values and unknown consent fields are dropped."""
    consent = {"ad_user_data": "granted", "ad_personalization": "DENIED", "analytics": "GRANTED"}
    validation = validate(body_with(consent=consent))
    assert validation.body["consent"] == {"ad_personalization": "DENIED"}
    assert problems(validation) == [
        ("consent.analytics", Code.NAME_INVALID, False),
        ("consent.ad_user_data", Code.VALUE_INVALID, False),
    ]


def test_user_location_and_device_hold_known_string_fields() -> None:
    """Unknown or non-string fields of user_location and device are dropped."""
    validation = validate(
        body_with(user_location={"country_id": "DE", "zip": "10115"}, device={"model": 9})
    )
    assert validation.body["user_location"] == {"country_id": "DE"}
    assert validation.body["device"] == {}
    assert problems(validation) == [
        ("user_location.zip", Code.NAME_INVALID, False),
        ("device.model", Code.VALUE_INVALID, False),
    ]


@pytest.mark.parametrize("ip", ["203.0.113.7", "2001:db8::1"])
def test_a_valid_ip_override_passes(ip: str) -> None:
    """IPv4 and IPv6 addresses are accepted."""
    assert validate(body_with(ip_override=ip)).messages == ()


def test_an_ip_override_that_is_not_an_ip_is_dropped() -> None:
    """GA4 would geolocate garbage: it is removed."""
    validation = validate(body_with(ip_override="1.2.3"))
    assert "ip_override" not in validation.body
    assert problems(validation) == [("ip_override", Code.VALUE_INVALID, False)]


def test_a_non_string_user_agent_is_dropped() -> None:
    """user_agent is text."""
    assert problems(validate(body_with(user_agent=5))) == [
        ("user_agent", Code.VALUE_INVALID, False)
    ]


def test_the_body_must_be_smaller_than_130_kb() -> None:
    """Size is measured on the exact bytes sent; a body of 130 000 bytes is fatal."""
    body = body_with(user_agent="")
    body["user_agent"] = "a" * (129_999 - len(encode_body(body)))
    assert len(encode_body(body)) == 129_999
    assert validate(body).messages == ()
    body["user_agent"] += "a"
    assert problems(validate(body)) == [("", Code.VALUE_OUT_OF_BOUNDS, True)]


# Parsing and repair


def test_parse_body_reports_duplicated_names() -> None:
    """A name given twice in one object is NAME_DUPLICATED."""
    body, messages = parse_body(b'{"client_id":"1.2","client_id":"3.4","events":[]}')
    assert body == {"client_id": "3.4", "events": []}
    assert [(m.field_path, m.code) for m in messages] == [("client_id", Code.NAME_DUPLICATED)]


def test_parse_body_reports_text_that_is_not_json() -> None:
    """Unparseable bytes are one fatal VALUE_INVALID."""
    body, messages = parse_body(b"{nope")
    assert body is None
    assert [(m.code, m.fatal) for m in messages] == [(Code.VALUE_INVALID, True)]


def test_a_repaired_body_validates_cleanly_and_the_input_is_untouched() -> None:
    """Repair is complete (no message on a second pass) and never mutates its input."""
    messy = body_with(
        {"_x": 1, "plan": "p" * 150, "obj": {}, **{f"c{i}": i for i in range(30)}},
        user_properties={"ga_x": {"value": 1}, "tier": {"value": "t" * 50}},
        consent={"ad_user_data": "yes"},
        ip_override="nope",
        extra=1,
    )
    snapshot = copy.deepcopy(messy)
    first = validate(messy)
    assert first.sendable
    assert first.messages
    assert validate(first.body).messages == ()
    assert messy == snapshot


def test_messages_render_in_ga4s_shape() -> None:
    """fieldPath, description, validationCode: exactly GA4's keys."""
    (message,) = validate(body_with(shoe=1)).messages
    assert set(message.as_ga4()) == {"fieldPath", "description", "validationCode"}
