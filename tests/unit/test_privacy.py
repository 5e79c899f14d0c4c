"""PII rules: detection, pseudonyms, user id and parameter policies, IP handling."""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.privacy import (
    apply_ip_policy,
    apply_user_id_policy,
    looks_like_pii,
    normalize_pii,
    pseudonymize,
    scrub_parameters,
    truncate_ip,
)
from shared.errors import SettingsError

SECRET = "pii-hash-secret-0123456789"
PSEUDONYM = re.compile(r"h_[0-9a-f]{64}")


@pytest.mark.parametrize(
    "value",
    [
        "jane.doe@example.com",
        "Jane.Doe+shop@Example.CO.UK",
        " jane@example.com ",
        "jane.doe%40example.com",
        "user:jane_o'neil@mail.example.org",
    ],
)
def test_email_addresses_are_recognised(value: str) -> None:
    """An email address anywhere in the value, plain or percent-encoded, is PII."""
    assert looks_like_pii(value) == "email"


@pytest.mark.parametrize(
    "value",
    [
        "+15551234567",
        "+1 555 123 4567",
        "+44 20 7946 0958",
        "+49 (0)30 1234567",
        "004420 7946 0958",
        "(555) 123-4567",
        "555-123-4567",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "0612345678",
        "07700900123",
        "tel:+15551234567",
    ],
)
def test_phone_numbers_are_recognised(value: str) -> None:
    """International and national phone shapes with enough digits are PII."""
    assert looks_like_pii(value) == "phone"


@pytest.mark.parametrize(
    "value",
    [
        "cust-000981",
        "T-100045",
        "user_42",
        "3f2b8c4e-9d1a-4f6b-8e2d-7a5c3b1e9f00",
        "123e4567-e89b-12d3-a456-426614174000",
        "98765",
        "123456",
        "123456789",
        "6523458172983",
        "0000012345",
        "1768696203.1712345678",
        "203.0.113.27",
        "2024-01-15",
        "+1234",
        "h_" + "a" * 64,
        "",
        "jane at example dot com",
        "user@localhost",
    ],
)
def test_typical_ids_are_not_mistaken_for_pii(value: str) -> None:
    """Customer ids, UUIDs, short or bare numeric ids, IPs and dates are left alone."""
    assert looks_like_pii(value) is None


def test_a_pseudonym_is_prefixed_hex_and_deterministic() -> None:
    """``h_`` + 64 hex characters, the same for the same value and secret."""
    first = pseudonymize("jane@example.com", SECRET)
    assert PSEUDONYM.fullmatch(first)
    assert pseudonymize("jane@example.com", SECRET) == first


def test_a_pseudonym_depends_on_the_secret() -> None:
    """Another secret gives another pseudonym, so tables of hashes do not carry over."""
    assert pseudonymize("jane@example.com", SECRET) != pseudonymize(
        "jane@example.com", SECRET + "2"
    )


def test_a_short_pii_secret_is_refused() -> None:
    """A secret under 16 bytes is a deployment error."""
    with pytest.raises(SettingsError):
        pseudonymize("jane@example.com", "short")


@given(st.text(st.characters(codec="utf-8")))
def test_pseudonymize_never_returns_its_input_and_is_stable(value: str) -> None:
    """For any text the pseudonym differs from it and repeats exactly."""
    pseudonym = pseudonymize(value, SECRET)
    assert pseudonym != value
    assert pseudonym == pseudonymize(value, SECRET)
    assert PSEUDONYM.fullmatch(pseudonym)


def test_a_plain_user_id_is_kept() -> None:
    """A user id that is not PII passes unchanged in either mode."""
    assert apply_user_id_policy("cust-000981", "hash", SECRET) == ("cust-000981", "kept")
    assert apply_user_id_policy("cust-000981", "drop", None) == ("cust-000981", "kept")


def test_a_missing_user_id_stays_missing() -> None:
    """No user id, nothing to do."""
    assert apply_user_id_policy(None, "hash", SECRET) == (None, "kept")


def test_an_email_user_id_is_hashed_case_insensitively() -> None:
    """One mailbox's spellings share one pseudonym, never the raw address."""
    first = apply_user_id_policy("Jane.Doe@Example.com", "hash", SECRET)
    second = apply_user_id_policy(" jane.doe@example.com", "hash", SECRET)
    assert first.action == "hashed"
    assert first.user_id == second.user_id
    assert first.user_id is not None
    assert PSEUDONYM.fullmatch(first.user_id)


def test_a_phone_user_id_is_hashed_across_spellings() -> None:
    """Separators do not change a phone number's pseudonym."""
    first = apply_user_id_policy("+1 (555) 123-4567", "hash", SECRET)
    second = apply_user_id_policy("+15551234567", "hash", SECRET)
    assert first == second
    assert first.action == "hashed"


def test_a_pii_user_id_is_dropped_in_drop_mode() -> None:
    """``drop`` removes the user id."""
    assert apply_user_id_policy("jane@example.com", "drop", SECRET) == (None, "dropped")


def test_hash_mode_without_a_secret_drops_and_says_so() -> None:
    """An unkeyed hash would be reversible, so without a secret the id is dropped."""
    decision = apply_user_id_policy("+15551234567", "hash", None)
    assert decision == (None, "dropped_no_secret")
    assert apply_user_id_policy("jane@example.com", "hash", "").action == "dropped_no_secret"


def test_an_unknown_pii_mode_is_refused() -> None:
    """Only ``hash`` and ``drop`` exist."""
    with pytest.raises(ValueError, match="PII mode"):
        apply_user_id_policy("x", "keep", SECRET)
    with pytest.raises(ValueError, match="PII mode"):
        scrub_parameters({}, (), "keep", SECRET)


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (" Jane@Example.COM ", "email", "jane@example.com"),
        ("+44 (20) 7946-0958", "phone", "+442079460958"),
        ("06 12 34 56 78", "phone", "0612345678"),
    ],
)
def test_pii_is_normalised_before_hashing(value: str, kind: str, expected: str) -> None:
    """Emails trimmed and lowercased; phones reduced to an optional ``+`` and digits."""
    assert normalize_pii(value, kind) == expected  # type: ignore[arg-type]


def test_named_parameters_are_pseudonymised_in_hash_mode() -> None:
    """Configured names are replaced by pseudonyms; other parameters are untouched."""
    event = {"customer_email": "Jane@Example.com", "phone": 15551234567, "value": 3}
    scrubbed = scrub_parameters(event, ("customer_email", "phone"), "hash", SECRET)
    assert scrubbed["customer_email"] == pseudonymize("jane@example.com", SECRET)
    assert scrubbed["phone"] == pseudonymize("15551234567", SECRET)
    assert scrubbed["value"] == 3


@pytest.mark.parametrize(("mode", "secret"), [("drop", SECRET), ("hash", None)])
def test_named_parameters_are_removed_when_not_hashed(mode: str, secret: str | None) -> None:
    """``drop`` mode, or ``hash`` without a secret, removes the parameters."""
    scrubbed = scrub_parameters({"email": "jane@example.com", "a": 1}, ("email",), mode, secret)
    assert scrubbed == {"a": 1}


def test_named_parameters_are_found_at_any_depth() -> None:
    """A configured name inside items or nested objects is scrubbed too."""
    event = {"items": [{"item_id": "SKU_1", "buyer_email": "a@b.co"}], "x": {"buyer_email": None}}
    scrubbed = scrub_parameters(event, ("buyer_email",), "drop", None)
    assert scrubbed == {"items": [{"item_id": "SKU_1"}], "x": {}}


def test_scrubbing_leaves_the_input_unchanged() -> None:
    """The caller's event is copied, never mutated."""
    event = {"email": "a@b.co", "items": [{"email": "c@d.co"}], "user_data": {"phone": "+1555"}}
    before = copy.deepcopy(event)
    scrub_parameters(event, ("email",), "hash", SECRET)
    assert event == before


def test_raw_user_data_leaves_only_as_the_hashes_ga4_requires() -> None:
    """Raw email and phone never pass: they become SHA-256 of Google's normalised form."""
    event = {
        "event_name": "purchase",
        "user_data": {"email_address": " Jane.Doe@Example.com", "phone_number": "+1 555 123 4567"},
    }
    scrubbed = scrub_parameters(event, (), "hash", SECRET)
    assert "jane" not in json.dumps(scrubbed).lower()
    assert scrubbed["user_data"] == {
        "sha256_email_address": [hashlib.sha256(b"jane.doe@example.com").hexdigest()],
        "sha256_phone_number": [hashlib.sha256(b"+15551234567").hexdigest()],
    }


def test_hashed_user_data_fields_are_kept_and_other_raw_fields_dropped() -> None:
    """Page-hashed fields survive; an unknown raw field does not; city stays plain, as GA4
    accepts it."""
    event = {
        "user_data": {
            "sha256_email_address": ["a" * 64],
            "nickname": "jj",
            "address": [{"sha256_first_name": "b" * 64, "city": "Paris"}],
        }
    }
    assert scrub_parameters(event, (), "drop", None) == {
        "user_data": {
            "sha256_email_address": ["a" * 64],
            "address": [{"sha256_first_name": "b" * 64, "city": "paris"}],
        }
    }


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.27", "203.0.113.0"),
        (" 198.51.100.255 ", "198.51.100.0"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
        ("::ffff:203.0.113.27", "203.0.113.0"),
        ("not-an-ip", None),
        ("", None),
        ("203.0.113.256", None),
    ],
)
def test_ips_are_truncated_to_their_network(ip: str, expected: str | None) -> None:
    """IPv4 keeps /24, IPv6 keeps /48, mapped IPv4 is treated as IPv4, junk is None."""
    assert truncate_ip(ip) == expected


@given(st.ip_addresses(v=4))
def test_any_ipv4_truncates_to_the_same_slash_24(address: ipaddress.IPv4Address) -> None:
    """The first three octets are kept and the host octet is zero."""
    truncated = truncate_ip(str(address))
    assert truncated is not None
    assert truncated.split(".")[:3] == str(address).split(".")[:3]
    assert truncated.endswith(".0")


@given(st.ip_addresses(v=6))
def test_any_ipv6_keeps_only_its_first_48_bits(address: ipaddress.IPv6Address) -> None:
    """The truncated address is the /48 network of the original."""
    truncated = truncate_ip(str(address))
    assert truncated is not None
    if address.ipv4_mapped is None:
        network = ipaddress.ip_network(f"{address}/48", strict=False)
        assert ipaddress.ip_address(truncated) == network.network_address


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("pass", "203.0.113.27"), ("truncate", "203.0.113.0"), ("drop", None)],
)
def test_the_ip_policy_passes_truncates_or_drops(mode: str, expected: str | None) -> None:
    """Each IP mode yields what ``ip_override`` should carry."""
    assert apply_ip_policy("203.0.113.27", mode) == expected


def test_no_ip_stays_no_ip() -> None:
    """A missing IP is missing under every mode."""
    assert apply_ip_policy(None, "pass") is None


def test_an_unknown_ip_mode_is_refused() -> None:
    """Only ``pass``, ``truncate`` and ``drop`` exist."""
    with pytest.raises(ValueError, match="IP mode"):
        apply_ip_policy("203.0.113.27", "anonymize")
