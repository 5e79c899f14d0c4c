"""Raw-event decoding: every valid variant normalised, every invalid one refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.domain.events import (
    REASONS,
    decode_raw_event,
    normalize_client_id,
    parse_consent,
    to_micros,
)
from shared.domain.messages import message_from_cloud_event
from shared.errors import InvalidEvent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gtm-sc-event-data.json"
PUBLISH = 1_763_801_000_000_000


def fixture_events() -> list[dict[str, Any]]:
    return list(json.loads(FIXTURES.read_text())["events"])


def test_every_well_formed_fixture_event_decodes_and_the_malformed_ones_say_why():
    """The real-world shaped fixtures: five decode, the last two fail with precise reasons."""
    events = fixture_events()
    decoded = [decode_raw_event(e, f"m{i}", PUBLISH) for i, e in enumerate(events[:5])]
    assert [d.client_id for d in decoded] == [
        "1768696203.1712345678",
        "1768696203.1712345678",
        "ZDoa3Sn32zo3RN66kguVogdtbQB1xZr/EBDR9gylXKA=.1647778941",
        "845123990.1763801000",
        "1768696203.1712345678",
    ]
    assert [d.time_source for d in decoded] == [
        "publish_time",
        "custom_timestamp",
        "gtm.start",
        "publish_time",
        "event_timestamp",
    ]
    assert decoded[1].time_micros == 1_763_800_611_712_000
    assert decoded[0].client_session_id == 1_763_800_154
    assert decoded[0].client_session_number == 12
    assert decoded[0].campaign == "utm_source=newsletter&utm_medium=email&utm_campaign=nov"
    assert decoded[0].stream_id == "G-ABCDE12345"
    reasons = []
    for event in events[5:]:
        with pytest.raises(InvalidEvent) as caught:
            decode_raw_event(event, "bad", PUBLISH)
        reasons.append(caught.value.reason)
    assert reasons == ["missing_client_id", "missing_event_name"]


@pytest.mark.parametrize(
    ("incoming", "canonical"),
    [
        ("123.456", "123.456"),
        (" GA1.1.123.456 ", "123.456"),
        ("GA1.2.1768696203.1712345678", "1768696203.1712345678"),
        (
            "ZDoa3Sn32zo3RN66kguVogdtbQB1xZr/EBDR9gylXKA=.1647778941",
            "ZDoa3Sn32zo3RN66kguVogdtbQB1xZr/EBDR9gylXKA=.1647778941",
        ),
    ],
)
def test_client_id_variants_normalise_to_the_canonical_form(incoming: str, canonical: str):
    """Bare, cookie-prefixed and server-managed client ids are all accepted."""
    assert normalize_client_id(incoming) == canonical


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing_client_id"),
        ("  ", "missing_client_id"),
        ("undefined", "malformed_client_id"),
        ("123", "malformed_client_id"),
        (123.456, "malformed_client_id"),
        ("12.34.56.78.90", "malformed_client_id"),
    ],
)
def test_malformed_client_ids_are_refused_with_their_reason(value: object, reason: str):
    """Anything that is not a GA4 client id is a permanent error naming the rule."""
    with pytest.raises(InvalidEvent) as caught:
        normalize_client_id(value)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        (1_763_800_611, 1_763_800_611_000_000),
        (1_763_800_611_712, 1_763_800_611_712_000),
        ("1763800611712345", 1_763_800_611_712_345),
        (1_763_800_611.5, 1_763_800_611_500_000),
    ],
)
def test_timestamps_in_seconds_milliseconds_or_microseconds_are_recognised(
    value: object, micros: int
):
    """The magnitude of a timestamp decides its unit."""
    assert to_micros(value, "t") == micros


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("soon", "unparseable_time"),
        (True, "unparseable_time"),
        (-5, "unparseable_time"),
        (1000, "absurd_time"),
        (9_999_999_999_999_999, "absurd_time"),
        ([], "unparseable_time"),
    ],
)
def test_unparseable_or_absurd_times_are_refused(value: object, reason: str):
    """A time that is not a number, or not between 2010 and 2100, is refused."""
    with pytest.raises(InvalidEvent) as caught:
        to_micros(value, "timestamp_micros")
    assert caught.value.reason == reason


def test_time_fields_are_preferred_in_contract_order():
    """timestamp_micros beats event_timestamp beats custom_timestamp beats gtm.start."""
    base = {"client_id": "1.2", "event_name": "x"}
    both = {**base, "timestamp_micros": 1_763_000_000_000_001, "event_timestamp": 1_700_000_000_000}
    assert decode_raw_event(both, "m", PUBLISH).time_source == "timestamp_micros"
    late = {**base, "event_timestamp": 1_700_000_000_000, "gtm.start": 1_600_000_000_000}
    assert decode_raw_event(late, "m", PUBLISH).time_micros == 1_700_000_000_000_000
    custom = {**base, "custom_timestamp": 1_650_000_000_000, "event_timestamp": 1_700_000_000_000}
    assert decode_raw_event(custom, "m", PUBLISH).time_source == "event_timestamp"
    with pytest.raises(InvalidEvent) as caught:
        decode_raw_event(base, "m", None)
    assert caught.value.reason == "missing_time"


def test_event_id_falls_back_to_the_message_id():
    """Without an event_id, the Pub/Sub message id identifies the event."""
    base = {"client_id": "1.2", "event_name": "x"}
    assert decode_raw_event(base, "msg-9", PUBLISH).event_id == "msg-9"
    assert decode_raw_event({**base, "event_id": "e-1"}, "msg-9", PUBLISH).event_id == "e-1"


@pytest.mark.parametrize(
    ("data", "analytics", "ads"),
    [
        ({"x-ga-gcs": "G111"}, True, True),
        ({"x-ga-gcs": "G100"}, False, False),
        ({"x-ga-gcs": "G101"}, True, False),
        ({"x-ga-gcs": "G110"}, False, True),
        ({}, None, None),
        (
            {
                "consent": {"analytics_storage": "denied", "ad_storage": "granted"},
                "x-ga-gcs": "G111",
            },
            False,
            True,
        ),
    ],
)
def test_consent_comes_from_the_consent_object_or_gcs(
    data: dict[str, Any], analytics: object, ads: object
):
    """x-ga-gcs is G1 + ad_storage digit + analytics_storage digit; a consent object wins."""
    consent = parse_consent(data)
    assert (consent.analytics_storage, consent.ad_storage) == (analytics, ads)


def test_ad_consent_signals_are_read_from_the_consent_object():
    """ad_user_data and ad_personalization map through as granted/denied."""
    consent = parse_consent({"consent": {"ad_user_data": "GRANTED", "ad_personalization": False}})
    assert consent.as_dict()["ad_user_data"] == "granted"
    assert consent.as_dict()["ad_personalization"] == "denied"


def test_missing_or_invalid_event_names_are_refused():
    """event_name is required and must be a GA4 name."""
    for data, reason in [
        ({"client_id": "1.2"}, "missing_event_name"),
        ({"client_id": "1.2", "event_name": "9 lives"}, "malformed_event_name"),
    ]:
        with pytest.raises(InvalidEvent) as caught:
            decode_raw_event(data, "m", PUBLISH)
        assert caught.value.reason == reason
        assert caught.value.reason in REASONS


def test_cloud_event_envelopes_decode_and_broken_ones_are_invalid():
    """Eventarc data decodes to a message; non-Pub/Sub data or bad base64 is InvalidEvent."""
    message = message_from_cloud_event(
        {
            "message": {
                "data": "eyJhIjoxfQ==",
                "messageId": "7",
                "publishTime": "2025-11-22T08:29:14.5Z",
            }
        }
    )
    assert message.json_object() == {"a": 1}
    assert message.publish_time_micros == 1_763_800_154_500_000
    for data, reason in [({"nope": 1}, "not_pubsub"), ({"message": {"data": "%%%"}}, "not_base64")]:
        with pytest.raises(InvalidEvent) as caught:
            message_from_cloud_event(data)
        assert caught.value.reason == reason
