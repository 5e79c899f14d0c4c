"""User properties and user-provided data in the Measurement Protocol's shape."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.user_fields import (
    MAX_USER_PROPERTIES,
    mp_user_properties,
    normalize_email,
    normalize_phone,
    normalized_user_data,
)


def sha(normalised: str) -> str:
    """The digest GA4 expects for an already normalised literal."""
    return hashlib.sha256(normalised.encode()).hexdigest()


HEX64 = re.compile(r"[0-9a-f]{64}")
PAGE_HASH = sha("someone@example.com")

# --- user properties ---------------------------------------------------------------


def test_sgtm_flat_user_properties_become_mp_shaped_without_internal_keys() -> None:
    """x-ga-mp2-user_properties loses _npa, _user_id and reserved names; the rest is wrapped."""
    flat = {
        "_npa": "1",
        "_user_id": "cust-1",
        "plan": "pro",
        "ga_session": "x",
        "google_thing": "x",
        "firebase_exp": "x",
        "user_id": "cust-1",
        "first_visit_time": 1,
        "first_open_time": 1,
        "last_deep_link_referrer": "x",
        "first_open_after_install": True,
        "lifetime_orders": 7,
    }
    assert mp_user_properties(flat) == {"plan": {"value": "pro"}, "lifetime_orders": {"value": 7}}


@pytest.mark.parametrize("name", ["User_ID", "GA_x", "Google_y", "FIREBASE_z", "First_Visit_Time"])
def test_reserved_names_are_refused_in_any_case(name: str) -> None:
    """Lookalikes of reserved names differ only in case and are dropped."""
    assert mp_user_properties({name: "v"}) == {}


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("a" * 24, True),
        ("a" * 25, False),
        ("plan_2", True),
        ("P", True),
        ("2plan", False),
        ("plan-type", False),
        ("plan type", False),
        ("plän", False),
        ("", False),
    ],
)
def test_property_names_follow_mp_rules(name: str, kept: bool) -> None:
    """A letter, then letters, digits or underscores, 24 characters at most."""
    assert (name in mp_user_properties({name: "v"})) is kept


def test_non_string_names_are_skipped() -> None:
    """Keys that are not strings cannot be property names."""
    assert mp_user_properties({1: "v", None: "v", "ok": "v"}) == {"ok": {"value": "v"}}


def test_mp_shaped_properties_pass_through() -> None:
    """{name: {"value": v}} is read as MP shape, not as a nested value."""
    assert mp_user_properties({"plan": {"value": "pro"}, "tier": {"value": 3}}) == {
        "plan": {"value": "pro"},
        "tier": {"value": 3},
    }


def test_string_values_are_cut_to_36_characters_and_numbers_stay_numbers() -> None:
    """Strings longer than 36 characters are cut; ints and floats are not stringified."""
    props = mp_user_properties({"long": "x" * 50, "count": 3, "ratio": 0.25, "empty": ""})
    assert props == {
        "long": {"value": "x" * 36},
        "count": {"value": 3},
        "ratio": {"value": 0.25},
        "empty": {"value": ""},
    }


@pytest.mark.parametrize("value", [None, True, False, float("nan"), float("inf"), [1], {"a": 1}])
def test_values_mp_cannot_take_are_skipped(value: object) -> None:
    """None, booleans, non-finite floats and containers are left out, flat or MP-shaped."""
    assert mp_user_properties({"p": value}) == {}
    assert mp_user_properties({"p": {"value": value}}) == {}


def test_first_source_with_a_usable_value_wins() -> None:
    """Sources are merged in order; a None in an earlier source does not block a later one."""
    props = mp_user_properties(
        {"plan": "pro", "tier": None},
        {"plan": {"value": "free"}, "tier": {"value": "gold"}, "extra": 1},
    )
    assert props == {"plan": {"value": "pro"}, "tier": {"value": "gold"}, "extra": {"value": 1}}


def test_at_most_25_properties_in_source_order() -> None:
    """The first 25 usable properties are kept, across sources."""
    first = {f"p{i:02d}": i for i in range(20)}
    second = {"_npa": "1", **{f"q{i:02d}": i for i in range(10)}}
    props = mp_user_properties(first, second)
    assert len(props) == MAX_USER_PROPERTIES
    assert list(props)[-5:] == ["q00", "q01", "q02", "q03", "q04"]


@pytest.mark.parametrize("source", [None, "plan=pro", ["plan"], 3])
def test_sources_that_are_not_maps_are_ignored(source: object) -> None:
    """Garbage sources contribute nothing and do not raise."""
    assert mp_user_properties(source, {"plan": "pro"}) == {"plan": {"value": "pro"}}


# --- normalisation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  John.Doe@Gmail.com ", "johndoe@gmail.com"),
        ("John.Doe@GoogleMail.com", "johndoe@googlemail.com"),
        ("John.Doe@example.com", "john.doe@example.com"),
        ("john doe @ example.com", "johndoe@example.com"),
        ("Jane+news@Example.co.uk", "jane+news@example.co.uk"),
    ],
)
def test_emails_normalise_as_google_documents(raw: str, expected: str) -> None:
    """Trim, lower-case, no spaces, and no periods before @ for Gmail addresses only."""
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "not-an-email", "a@b", "@example.com", "a@@example.com", "...@gmail.com", None, 5]
)
def test_values_that_are_not_emails_normalise_to_none(raw: object) -> None:
    """Nothing that cannot be an address is hashed."""
    assert normalize_email(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 (800) 555-0100", "+18005550100"),
        (" +44 20 7946 0958 ", "+442079460958"),
        ("0049 151 23456789", "+4915123456789"),
        ("1-800-555-0100", "+18005550100"),
        ("tel:+33.1.23.45.67.89", "+33123456789"),
    ],
)
def test_phones_normalise_to_e164(raw: str, expected: str) -> None:
    """Digits behind a plus sign; 00 is the international prefix."""
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "015123456789", "+0151234567", "+123456", "+1234567890123456", "call me", None, 1]
)
def test_numbers_that_cannot_be_e164_normalise_to_none(raw: object) -> None:
    """National numbers, too short or too long numbers and non-strings are dropped."""
    assert normalize_phone(raw) is None


# --- user_data ---------------------------------------------------------------------


def test_plain_email_and_phone_are_hashed_after_normalisation() -> None:
    """The digest is of the normalised value, lowercase hex."""
    user_data = normalized_user_data(
        {"email_address": "  John.Doe@Gmail.com ", "phone_number": "+1 (800) 555-0100"}
    )
    assert user_data == {
        "sha256_email_address": [sha("johndoe@gmail.com")],
        "sha256_phone_number": [sha("+18005550100")],
    }


def test_gtag_email_key_is_accepted() -> None:
    """gtag's user_data spells the field email; sGTM spells it email_address."""
    assert normalized_user_data({"email": "a@example.com"}) == {
        "sha256_email_address": [sha("a@example.com")]
    }


def test_already_hashed_values_are_kept_lower_cased() -> None:
    """Page-side hashes are validated and lower-cased, singular or in lists."""
    user_data = normalized_user_data(
        {
            "sha256_email_address": PAGE_HASH.upper(),
            "sha256_phone_number": [f" {sha('+18005550100')} ", "not-a-hash", sha("x")[:63]],
        }
    )
    assert user_data == {
        "sha256_email_address": [PAGE_HASH],
        "sha256_phone_number": [sha("+18005550100")],
    }


def test_a_digest_under_a_plain_key_is_not_hashed_twice() -> None:
    """A 64-hex value where a plain value was expected is already a hash."""
    user_data = normalized_user_data({"email_address": PAGE_HASH})
    assert user_data == {"sha256_email_address": [PAGE_HASH]}


def test_hashed_and_plain_values_merge_without_repeats_up_to_three() -> None:
    """Page hashes come first, repeats are removed, and MP's limit of three holds."""
    user_data = normalized_user_data(
        {
            "sha256_email_address": [PAGE_HASH],
            "email_address": [
                "Someone@Example.com",
                "b@example.com",
                "c@example.com",
                "d@example.com",
            ],
        }
    )
    assert user_data["sha256_email_address"] == [
        PAGE_HASH,
        sha("b@example.com"),
        sha("c@example.com"),
    ]


def test_address_hashes_names_and_street_and_keeps_coarse_parts_in_clear() -> None:
    """Names lose digits and symbols, street loses symbols, city and region stay unhashed."""
    user_data = normalized_user_data(
        {
            "address": {
                "first_name": " Jöhn-Paul3 ",
                "last_name": "O'Brien",
                "street": "1600 Amphitheatre Pkwy.",
                "city": "Mountain View!",
                "region": "CA",
                "postal_code": " 94043~ ",
                "country": "us",
                "unit": "B",
            }
        }
    )
    assert user_data == {
        "address": [
            {
                "sha256_first_name": sha("jöhnpaul"),
                "sha256_last_name": sha("obrien"),
                "sha256_street": sha("1600 amphitheatre pkwy"),
                "city": "mountain view",
                "region": "ca",
                "postal_code": "94043",
                "country": "US",
            }
        ]
    }


def test_decomposed_accents_hash_like_composed_ones() -> None:
    """NFC first, so e + combining acute is the same name as é."""
    composed = normalized_user_data({"address": {"first_name": "Jos\u00e9"}})
    decomposed = normalized_user_data({"address": {"first_name": "Jose\u0301"}})
    assert composed == decomposed == {"address": [{"sha256_first_name": sha("jos\u00e9")}]}


def test_address_lists_keep_at_most_two_usable_addresses() -> None:
    """Unusable entries are skipped and MP's limit of two holds."""
    user_data = normalized_user_data(
        {
            "address": [
                {"country": "XX", "unit": "1"},
                "Main St",
                {"sha256_first_name": PAGE_HASH.upper()},
                {"postal_code": "10115", "country": "de"},
                {"city": "Paris"},
            ]
        }
    )
    assert user_data == {
        "address": [
            {"sha256_first_name": PAGE_HASH},
            {"postal_code": "10115", "country": "DE"},
        ]
    }


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "a@example.com",
        [],
        {},
        {"email_address": "nope", "phone_number": "012345", "address": {"country": "ZZ"}},
        {"sha256_email_address": "abc", "address": [None, 1]},
    ],
)
def test_nothing_usable_gives_an_empty_block(raw: object) -> None:
    """Garbage and unusable fields give {} rather than empty lists or an error."""
    assert normalized_user_data(raw) == {}


def test_no_plain_pii_reaches_the_output() -> None:
    """Emails, phones, names and streets appear only as digests."""
    user_data = normalized_user_data(
        {
            "email_address": "jane.roe@example.com",
            "phone_number": "+442079460958",
            "address": {"first_name": "Jane", "last_name": "Roe", "street": "1 Baker Street"},
        }
    )
    dumped = json.dumps(user_data).lower()
    for secret in ("jane", "roe", "442079460958", "baker", "example.com"):
        assert secret not in dumped


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
user_data_keys = st.sampled_from(
    [
        "email_address",
        "email",
        "phone_number",
        "sha256_email_address",
        "sha256_phone_number",
        "address",
    ]
)


@given(json_values | st.dictionaries(user_data_keys, json_values))
def test_user_data_never_raises_and_emits_only_digests_and_clear_address_parts(
    raw: object,
) -> None:
    """Any JSON-like input gives a block whose hashed fields are all 64 lowercase hex digits."""
    user_data = normalized_user_data(raw)
    assert set(user_data) <= {"sha256_email_address", "sha256_phone_number", "address"}
    assert len(user_data.get("sha256_email_address", [])) <= 3
    assert len(user_data.get("sha256_phone_number", [])) <= 3
    assert len(user_data.get("address", [])) <= 2
    digests = [
        *user_data.get("sha256_email_address", []),
        *user_data.get("sha256_phone_number", []),
    ]
    for address in user_data.get("address", []):
        digests += [v for k, v in address.items() if k.startswith("sha256_")]
    assert all(HEX64.fullmatch(d) for d in digests)


@given(json_values, json_values)
def test_user_properties_never_raise_and_stay_within_limits(first: object, second: object) -> None:
    """Any JSON-like sources give MP-shaped properties within MP's limits."""
    props = mp_user_properties(first, second)
    assert len(props) <= MAX_USER_PROPERTIES
    for name, wrapped in props.items():
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,23}", name)
        assert list(wrapped) == ["value"]
        assert not isinstance(wrapped["value"], str) or len(wrapped["value"]) <= 36
