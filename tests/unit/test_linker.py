"""GA4's ``_gl`` linker: parsing, the checksum, and its time and browser bounds."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.crossdomain.linker import (
    TIMEZONE_OFFSETS,
    build_linker_param,
    check_linker_param,
    encode_linker,
    extract_linker_param,
    language_spellings,
    linker_checksum,
    normalize_linker_client_id,
    parse_linker_param,
)

FIXTURE = Path("/work/shared/fixtures/gtm-sc-event-data.json")

# ampproject/amphtml extensions/amp-analytics/0.1/test/test-linker.js: its fixed browser.
AMP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/67.0.3396.99 Safari/537.36"
)
AMP_SECONDS = 1533329483.292
AMP_MINUTE = 1533329483292 // 60000
AMP_TIMEZONE = 420
AMP_LANGUAGE = "en-US"
AMP_GA_LINKER = "1*5x9ojm*_ga*MTIxODQzNTA1NS4xNTM2MTg4OTEz"

FIREFOX_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
CLIENT = "1768696203.1712345678"
NOW = 1_763_800_987.123


def _fixture_purchase() -> dict[str, object]:
    events = json.loads(FIXTURE.read_text())["events"]
    return next(e for e in events if e.get("event_name") == "purchase")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"_ga": "1218435055.1536188913"}, AMP_GA_LINKER),
        ({"foo": "123"}, "1*14cn7x*foo*MTIz"),
        ({"key1": "value1"}, "1*1f66u1p*key1*dmFsdWUx"),
        (
            {"key1": "value1", "name": "bob", "color": "green", "car": "tesla"},
            "1*6orwo8*key1*dmFsdWUx*name*Ym9i*color*Z3JlZW4.*car*dGVzbGE.",
        ),
        (
            {"cid": "12345", "ref": "https://www.example.com"},
            "1*1m48hbv*cid*MTIzNDU.*ref*aHR0cHM6Ly93d3cuZXhhbXBsZS5jb20.",
        ),
        ({"key": "*hi*", "key2": "***"}, "1*1fo13qb*key*KmhpKg..*key2*Kioq"),
    ],
)
def test_building_reproduces_the_published_reference_values(
    values: dict[str, str], expected: str
) -> None:
    """The builder matches the reference implementation's pinned outputs for its inputs."""
    built = build_linker_param(
        values,
        AMP_UA,
        AMP_MINUTE,
        language=AMP_LANGUAGE,
        timezone_offset_minutes=AMP_TIMEZONE,
    )
    assert built == expected


def test_a_reference_value_checks_without_knowing_the_timezone() -> None:
    """With the event's lowercase language and no timezone, the checksum is still found."""
    check = check_linker_param(AMP_GA_LINKER, AMP_UA, AMP_SECONDS, language="en-us")
    assert check.ok
    assert check.client_id == "1218435055.1536188913"
    assert check.timezone_offset_minutes == AMP_TIMEZONE
    assert check.minutes_old == 0


def test_a_value_from_the_previous_minute_is_accepted() -> None:
    """GA4 accepts a link built in the minute before the event."""
    check = check_linker_param(AMP_GA_LINKER, AMP_UA, AMP_SECONDS + 60, language="en-US")
    assert check.ok
    assert check.minutes_old == 1


def test_a_value_from_two_minutes_ago_is_rejected() -> None:
    """A link older than the previous minute never links."""
    check = check_linker_param(AMP_GA_LINKER, AMP_UA, AMP_SECONDS + 120, language="en-US")
    assert check.failure == "checksum_mismatch"
    assert check.client_id is None


def test_a_wider_window_can_be_chosen() -> None:
    """``max_age_minutes`` widens the window, as some gtag.js builds do."""
    check = check_linker_param(
        AMP_GA_LINKER, AMP_UA, AMP_SECONDS + 120, language="en-US", max_age_minutes=2
    )
    assert check.minutes_old == 2


def test_a_value_from_a_later_minute_than_the_event_is_rejected() -> None:
    """A checksum stamped after the event's own time is not accepted."""
    check = check_linker_param(AMP_GA_LINKER, AMP_UA, AMP_SECONDS - 60, language="en-US")
    assert check.failure == "checksum_mismatch"


def test_another_user_agent_is_rejected() -> None:
    """A link carried to a different browser (a shared URL) never links."""
    check = check_linker_param(AMP_GA_LINKER, FIREFOX_UA, AMP_SECONDS, language="en-US")
    assert check.failure == "checksum_mismatch"


def test_another_language_is_rejected() -> None:
    """The browser's language is part of the fingerprint."""
    check = check_linker_param(AMP_GA_LINKER, AMP_UA, AMP_SECONDS, language="de-de")
    assert check.failure == "checksum_mismatch"


def test_a_known_wrong_timezone_is_rejected() -> None:
    """A timezone given by the caller is the only one tried."""
    check = check_linker_param(
        AMP_GA_LINKER, AMP_UA, AMP_SECONDS, language="en-US", timezone_offset_minutes=0
    )
    assert check.failure == "checksum_mismatch"


def test_a_tampered_client_id_is_rejected() -> None:
    """Swapping the carried client id breaks the checksum."""
    tampered = AMP_GA_LINKER.replace("MTIxODQzNTA1NS4xNTM2MTg4OTEz", "MTExLjIyMg..")
    check = check_linker_param(tampered, AMP_UA, AMP_SECONDS, language="en-US")
    assert check.failure == "checksum_mismatch"


def test_the_fixture_linker_parses_but_fails_its_checksum() -> None:
    """The fixture's illustrative ``_gl`` decodes, yet does not check for its browser."""
    event = _fixture_purchase()
    value = extract_linker_param(str(event["page_location"]))
    assert value is not None
    parsed = parse_linker_param(value)
    assert parsed is not None
    assert parsed.values["_ga"] == CLIENT
    assert parsed.values["_ga_ABCDE12345"] == "1763800154.12.1.1763800900.0.0.0"
    seconds = int(str(event["gtm.start"])) / 1000
    check = check_linker_param(
        value, str(event["user_agent"]), seconds, language="en-gb", max_age_minutes=60
    )
    assert check.failure == "checksum_mismatch"


def test_an_encoded_linker_round_trips_with_its_session() -> None:
    """``encode_linker`` output checks and carries the client id and the stream's session."""
    value = encode_linker(
        "GA1.1." + CLIENT,
        FIREFOX_UA,
        NOW,
        language="en-GB",
        timezone_offset_minutes=-60,
        measurement_id="G-ABCDE12345",
        session_id=1763800154,
        session_number=12,
    )
    check = check_linker_param(value, FIREFOX_UA, NOW + 30, language="en-gb")
    assert check.ok
    assert check.client_id == CLIENT
    session = check.session_for("G-ABCDE12345")
    assert session is not None
    assert (session.session_id, session.session_number) == (1763800154, 12)
    assert check.session_for("G-OTHER12345") is None


def test_an_encoded_linker_without_a_session_carries_only_the_client() -> None:
    """Without a measurement id and session id, only ``_ga`` is carried."""
    value = encode_linker(CLIENT, SAFARI_UA, NOW)
    assert value.count("*") == 3
    check = check_linker_param(value, SAFARI_UA, NOW, language="")
    assert check.client_id == CLIENT
    assert check.sessions == ()


@pytest.mark.parametrize("client_id", ["", "abc", "1.2.3", "GA1.1.abc.def", "0.123"])
def test_encoding_refuses_what_is_not_a_ga_client_id(client_id: str) -> None:
    """Only bare or ``GA1.x.``-prefixed numeric client ids are encoded."""
    with pytest.raises(ValueError, match="client id"):
        encode_linker(client_id, SAFARI_UA, NOW)


def test_encoding_refuses_a_malformed_measurement_id() -> None:
    """A measurement id that is not ``G-`` and a stream code is refused."""
    with pytest.raises(ValueError, match="measurement id"):
        encode_linker(CLIENT, SAFARI_UA, NOW, measurement_id="G-x*y", session_id=1)


def test_extra_linker_pairs_count_in_the_checksum_and_are_kept() -> None:
    """Ads cookies ride along: the value checks, and they are decoded."""
    values = {"_gcl_aw": "GCL.1763800000.Cj0KCQ", "_ga": CLIENT, "_up": "1"}
    value = build_linker_param(values, SAFARI_UA, int(NOW // 60), language="fr-FR")
    check = check_linker_param(value, SAFARI_UA, NOW, language="fr-fr")
    assert check.client_id == CLIENT
    parsed = parse_linker_param(value)
    assert parsed is not None
    assert parsed.values["_gcl_aw"] == "GCL.1763800000.Cj0KCQ"


def test_a_valid_checksum_without_a_client_id_reports_no_client_id() -> None:
    """An authentic link that carries no ``_ga`` links nothing."""
    value = build_linker_param({"_gcl_aw": "GCL.1.x"}, SAFARI_UA, int(NOW // 60))
    assert check_linker_param(value, SAFARI_UA, NOW, language="").failure == "no_client_id"


def test_a_prefixed_client_id_inside_the_linker_is_normalised() -> None:
    """A ``GA1.1.`` cookie value carried as ``_ga`` yields the bare client id."""
    value = build_linker_param({"_ga": "GA1.1." + CLIENT}, SAFARI_UA, int(NOW // 60))
    assert check_linker_param(value, SAFARI_UA, NOW, language="").client_id == CLIENT


def test_a_gs2_session_cookie_is_understood() -> None:
    """The newer ``s<id>$o<number>`` session cookie format yields id and number."""
    values = {"_ga": CLIENT, "_ga_ABCDE12345": "GS2.1.s1763800154$o7$g1$t1763800900$j0$l0$h0"}
    value = build_linker_param(values, SAFARI_UA, int(NOW // 60))
    session = check_linker_param(value, SAFARI_UA, NOW, language="").session_for("G-ABCDE12345")
    assert session is not None
    assert (session.session_id, session.session_number) == (1763800154, 7)


def test_an_unreadable_session_cookie_is_left_out() -> None:
    """A session cookie without a session id does not invent a session."""
    values = {"_ga": CLIENT, "_ga_ABCDE12345": "garbage"}
    value = build_linker_param(values, SAFARI_UA, int(NOW // 60))
    assert check_linker_param(value, SAFARI_UA, NOW, language="").sessions == ()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1*abc",
        "1*abc*_ga",
        "1*abc*_ga*MTEx*_ga_X",
        "2*abc*_ga*MTEx",
        "1*ABC*_ga*MTEx",
        "1*12345678*_ga*MTEx",
        "1**_ga*MTEx",
        "1*abc*" + "_ga*MTEx*" * 300 + "x*y",
    ],
)
def test_a_value_not_shaped_like_a_linker_is_malformed(value: str) -> None:
    """Wrong version, odd pairs, a bad checksum shape or excess length: malformed."""
    assert parse_linker_param(value) is None
    assert check_linker_param(value, SAFARI_UA, NOW).failure == "malformed"


def test_an_undecodable_value_is_left_out_of_the_values() -> None:
    """A pair whose value is not base64 is skipped, not guessed."""
    parsed = parse_linker_param("1*abc*_ga*M!x*_ok*MTEx")
    assert parsed is not None
    assert parsed.values == {"_ok": "111"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://b.example/?x=1&_gl=1*abc*_ga*MTEx", "1*abc*_ga*MTEx"),
        ("https://b.example/#_gl=1*abc*_ga*MTEx", "1*abc*_ga*MTEx"),
        ("https://b.example/?_gl=1%2Aabc%2A_ga%2AMTEx", "1*abc*_ga*MTEx"),
        ("https://b.example/?_gl=1%252Aabc%252A_ga%252AMTEx", "1*abc*_ga*MTEx"),
        ("https://b.example/?gl=1*abc*_ga*MTEx", None),
        ("https://b.example/?_gl=", None),
        (None, None),
        ("http://[::1/?_gl=1*a*b*c", None),
    ],
)
def test_the_linker_is_extracted_from_query_or_fragment(
    url: str | None, expected: str | None
) -> None:
    """``_gl`` is read from the query, else the fragment, percent-decoded as gtag.js does."""
    assert extract_linker_param(url) == expected


def test_the_checksum_reads_the_low_byte_of_each_character_as_gtag_does() -> None:
    """Non-ASCII text is hashed the way gtag.js's ``charCodeAt`` loop hashes it."""
    text = "Agent é*0*en*1*_ga*MTEx"
    expected = zlib.crc32(text.encode("latin-1"))
    digits = ""
    while expected:
        expected, remainder = divmod(expected, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[remainder] + digits
    assert linker_checksum("_ga*MTEx", "Agent é", 1, "en", 0) == digits


@pytest.mark.parametrize(
    ("language", "spellings"),
    [
        ("en-gb", ("en-gb", "en-GB")),
        ("en-US", ("en-US", "en-us")),
        ("zh-hant-tw", ("zh-hant-tw", "zh-Hant-TW")),
        ("de", ("de",)),
        (None, ("",)),
    ],
)
def test_language_spellings_cover_what_browsers_report(
    language: str | None, spellings: tuple[str, ...]
) -> None:
    """The lowercase language GTM SC forwards is tried in browser casing too."""
    assert language_spellings(language) == spellings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (CLIENT, CLIENT),
        ("GA1.1." + CLIENT, CLIENT),
        ("GA1.2." + CLIENT, CLIENT),
        (" 123.456 ", "123.456"),
        ("ZDoa3Sn32zo3RN66kguVogdtbQB1xZr/EBDR9gylXKA=.1647778941", None),
        ("123", None),
        ("", None),
    ],
)
def test_client_ids_are_normalised_to_the_bare_form(value: str, expected: str | None) -> None:
    """``GA1.x.`` prefixes are removed; anything not numeric ``X.Y`` is refused."""
    assert normalize_linker_client_id(value) == expected


def test_the_timezone_table_holds_each_real_offset_once() -> None:
    """Offsets span UTC-12 to UTC+14, include half and quarter hours, without repeats."""
    assert len(set(TIMEZONE_OFFSETS)) == len(TIMEZONE_OFFSETS)
    assert {720, -840, -330, -345, 210, 0} <= set(TIMEZONE_OFFSETS)


@given(
    st.integers(min_value=1, max_value=2**31 - 1),
    st.integers(min_value=1_000_000_000, max_value=2_000_000_000),
    st.sampled_from(TIMEZONE_OFFSETS),
    st.integers(min_value=0, max_value=119),
)
def test_any_encoded_client_checks_within_the_window(
    random_part: int, first_seen: int, timezone: int, delay: int
) -> None:
    """A link built by a browser checks for that browser up to the end of the next minute."""
    client_id = f"{random_part}.{first_seen}"
    built_at = first_seen + 0.5
    value = encode_linker(
        client_id, SAFARI_UA, built_at, language="en-GB", timezone_offset_minutes=timezone
    )
    check = check_linker_param(value, SAFARI_UA, built_at + delay, language="en-gb")
    within = int((built_at + delay) // 60) - int(built_at // 60) <= 1
    assert check.ok is within
    if within:
        assert check.client_id == client_id
