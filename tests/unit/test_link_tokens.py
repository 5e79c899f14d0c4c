"""Signed cross-domain link tokens: minting, checking, forgery, expiry and replay."""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.crossdomain.tokens import (
    check_link_token,
    extract_link_token,
    mint_link_token,
    new_nonce,
)
from shared.domain.urls import remove_query_parameters
from shared.errors import SettingsError

SECRET = "0123456789abcdef-link-secret"
OTHER_SECRET = "fedcba9876543210-link-secret"
SERVER_MANAGED_ID = "ZDoa3Sn32zo3RN66kguVogdtbQB1xZr/EBDR9gylXKA=.1647778941"
NOW = 1_763_800_000
NONCE = "n0nce-AbCdEf_123"
URL_SAFE = re.compile(r"[A-Za-z0-9._-]+")


def _mint(client_id: str = SERVER_MANAGED_ID, nonce: str = NONCE, ttl: int = 300) -> str:
    return mint_link_token(client_id, SECRET, NOW, ttl, nonce)


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _replace_part(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


def test_a_fresh_token_yields_its_client_id() -> None:
    """A token checked before expiry with the minting secret names the minted client."""
    check = check_link_token(_mint(), SECRET, NOW + 10)
    assert check.ok
    assert check.client_id == SERVER_MANAGED_ID
    assert check.failure is None


def test_the_token_is_url_safe_without_encoding() -> None:
    """A token needs no percent-encoding, even for a client id holding / + and =."""
    token = _mint()
    assert URL_SAFE.fullmatch(token)
    assert quote(token, safe="") == token


def test_the_check_reports_the_expiry_for_the_single_use_marker() -> None:
    """The expiry is mint time plus TTL, for the marker's ``expire_at``."""
    assert check_link_token(_mint(ttl=120), SECRET, NOW).expires_at_seconds == NOW + 120


def test_a_token_signed_with_another_secret_is_forged() -> None:
    """A token minted with a different secret never links."""
    token = mint_link_token(SERVER_MANAGED_ID, OTHER_SECRET, NOW, 300, NONCE)
    check = check_link_token(token, SECRET, NOW)
    assert check.failure == "forged"
    assert check.client_id is None
    assert check.token_id is None


def test_a_token_with_a_swapped_client_id_is_forged() -> None:
    """Replacing the client id part with another valid encoding breaks the signature."""
    other = mint_link_token("111.222", SECRET, NOW, 300, NONCE)
    tampered = _replace_part(_mint(), 1, other.split(".")[1])
    assert check_link_token(tampered, SECRET, NOW).failure == "forged"


def test_a_token_with_an_extended_expiry_is_forged() -> None:
    """Pushing the expiry later breaks the signature."""
    tampered = _replace_part(_mint(), 2, str(NOW + 86_400))
    assert check_link_token(tampered, SECRET, NOW + 400).failure == "forged"


def test_a_token_with_an_altered_tag_is_forged() -> None:
    """Changing one character of the tag is detected."""
    token = _mint()
    last = token[-1]
    tampered = token[:-1] + ("A" if last != "A" else "B")
    assert check_link_token(tampered, SECRET, NOW).failure == "forged"


def test_a_tag_spelled_differently_but_decoding_alike_is_forged() -> None:
    """Only the canonical spelling of the tag is accepted, so a token has one token id."""
    token = _mint()
    tag = token.rsplit(".", 1)[1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(tag[-1])
    sibling = alphabet[index ^ 1]
    tampered = token[:-1] + sibling
    assert _b64(tampered.rsplit(".", 1)[1]) == _b64(tag)
    assert check_link_token(tampered, SECRET, NOW).failure == "forged"


def test_a_token_at_its_expiry_second_is_expired() -> None:
    """A token is valid strictly before its expiry and expired from it on."""
    token = _mint(ttl=300)
    assert check_link_token(token, SECRET, NOW + 299).ok
    assert check_link_token(token, SECRET, NOW + 300).failure == "expired"


def test_a_forged_token_is_reported_forged_even_when_expired() -> None:
    """Authenticity is checked before expiry, so an expired verdict implies a real token."""
    token = mint_link_token(SERVER_MANAGED_ID, OTHER_SECRET, NOW, 10, NONCE)
    assert check_link_token(token, SECRET, NOW + 1000).failure == "forged"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "1.MTEx.1763800300.n0nce-AbCdEf_123",
        "2.MTExLjIyMg.1763800300.n0nce-AbCdEf_123.AAAAAAAAAAAAAAAAAAAAAA",
        "1.MTExLjIyMg.-1763800300.n0nce-AbCdEf_123.AAAAAAAAAAAAAAAAAAAAAA",
        "1.MTExLjIyMg.01763800300.n0nce-AbCdEf_123.AAAAAAAAAAAAAAAAAAAAAA",
        "1.MTExLjIyMg.1763800300.short.AAAAAAAAAAAAAAAAAAAAAA",
        "1.M.1763800300.n0nce-AbCdEf_123.AAAAAAAAAAAAAAAAAAAAAA",
        "1.MTE+LjIy.1763800300.n0nce-AbCdEf_123.AAAAAAAAAAAAAAAAAAAAAA",
        "1..1763800300.n0nce-AbCdEf_123.AAAAAAAAAAAAAAAAAAAAAA",
        "1.__8.1763800300.n0nce-AbCdEf_123.AAAAAAAAAAAAAAAAAAAAAA",
        "1." + "A" * 700 + ".1763800300.n0nce-AbCdEf_123.AAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_a_token_that_is_not_shaped_like_one_is_malformed(token: str) -> None:
    """Anything that does not parse as version 1 with valid parts is malformed."""
    assert check_link_token(token, SECRET, NOW).failure == "malformed"


def test_checking_the_same_token_twice_gives_the_same_token_id() -> None:
    """Replay detection rests on a stable token id: the second use finds the first's marker."""
    token = _mint()
    markers: set[str] = set()
    verdicts = []
    for _ in range(2):
        token_id = check_link_token(token, SECRET, NOW).token_id
        assert token_id is not None
        verdicts.append("replayed" if token_id in markers else "linked")
        markers.add(token_id)
    assert verdicts == ["linked", "replayed"]


def test_tokens_with_different_nonces_have_different_token_ids() -> None:
    """Two tokens for one client at one second are distinct single-use tokens."""
    first = check_link_token(_mint(nonce="nonce-one-1234"), SECRET, NOW).token_id
    second = check_link_token(_mint(nonce="nonce-two-1234"), SECRET, NOW).token_id
    assert first != second


def test_the_token_id_is_a_safe_firestore_document_id() -> None:
    """The token id is 32 lowercase hex characters."""
    token_id = check_link_token(_mint(), SECRET, NOW).token_id
    assert token_id is not None
    assert re.fullmatch(r"[0-9a-f]{32}", token_id)


@pytest.mark.parametrize("secret", ["short", b"fifteen-bytes!!", ""])
def test_a_secret_shorter_than_sixteen_bytes_is_refused(secret: str | bytes) -> None:
    """Minting and checking both refuse a weak secret as a deployment error."""
    with pytest.raises(SettingsError):
        mint_link_token(SERVER_MANAGED_ID, secret, NOW, 300, NONCE)
    with pytest.raises(SettingsError):
        check_link_token("1.a.b.c.d", secret, NOW)


def test_a_bytes_secret_works_like_its_text() -> None:
    """A secret given as bytes signs exactly as its UTF-8 text does."""
    token = mint_link_token(SERVER_MANAGED_ID, SECRET.encode(), NOW, 300, NONCE)
    assert token == _mint()


@pytest.mark.parametrize(
    ("client_id", "ttl", "nonce"),
    [
        ("", 300, NONCE),
        ("x" * 257, 300, NONCE),
        (SERVER_MANAGED_ID, 0, NONCE),
        (SERVER_MANAGED_ID, 86_401, NONCE),
        (SERVER_MANAGED_ID, 300, "short"),
        (SERVER_MANAGED_ID, 300, "has.dot.in.it"),
    ],
)
def test_minting_refuses_invalid_input(client_id: str, ttl: int, nonce: str) -> None:
    """An empty or oversized client id, an out-of-range TTL or a bad nonce is refused."""
    with pytest.raises(ValueError, match=r"client id|ttl_seconds|nonce"):
        mint_link_token(client_id, SECRET, NOW, ttl, nonce)


def test_new_nonces_are_valid_and_distinct() -> None:
    """Generated nonces are accepted by minting and do not repeat."""
    nonces = {new_nonce() for _ in range(50)}
    assert len(nonces) == 50
    for nonce in nonces:
        assert check_link_token(_mint(nonce=nonce), SECRET, NOW).ok


@given(st.text(st.characters(codec="utf-8"), min_size=1, max_size=256))
def test_any_client_id_survives_the_round_trip(client_id: str) -> None:
    """Whatever the client id's characters, the token is URL-safe and yields it back."""
    token = mint_link_token(client_id, SECRET, NOW, 60, NONCE)
    assert URL_SAFE.fullmatch(token)
    assert check_link_token(token, SECRET, NOW).client_id == client_id


def test_the_token_is_found_in_the_query_under_the_configured_name() -> None:
    """The configured query parameter of ``page_location`` carries the token."""
    url = "https://checkout.example-pay.com/pay?step=1&_gs_link=abc.def&x=2"
    assert extract_link_token(url, "_gs_link") == "abc.def"
    assert extract_link_token(url, "other") is None


def test_the_token_is_found_in_the_fragment() -> None:
    """A token carried after ``#`` (a fragment-decorated redirect) is found."""
    assert extract_link_token("https://b.example/#_gs_link=tok.en", "_gs_link") == "tok.en"


def test_an_event_field_wins_over_the_url() -> None:
    """A field the page set on purpose is preferred to a token left in the URL."""
    url = "https://b.example/?_gs_link=from-url"
    assert extract_link_token(url, "_gs_link", {"_gs_link": "from-field"}) == "from-field"
    assert extract_link_token(url, "_gs_link", {"link_token": " spaced "}) == "spaced"


@pytest.mark.parametrize(
    ("url", "fields"),
    [
        (None, None),
        ("", {}),
        ("https://b.example/?_gs_link=", {"_gs_link": "  "}),
        ("http://[::1/?_gs_link=x", None),
        ("https://b.example/", {"_gs_link": 42}),
    ],
)
def test_no_token_is_found_where_none_is(url: str | None, fields: dict[str, object] | None) -> None:
    """Missing, blank, non-text and unparseable carriers yield no token."""
    assert extract_link_token(url, "_gs_link", fields) is None


def test_removing_the_spent_token_keeps_the_rest_of_the_url_byte_for_byte() -> None:
    """Only the named parameters go; the other parameters keep their exact spelling."""
    url = "https://b.example/p?q=a%20b+c&_gs_link=x.y&_gl=1*a*b*c&z=%2F#frag"
    assert (
        remove_query_parameters(url, {"_gs_link", "_gl"})
        == "https://b.example/p?q=a%20b+c&z=%2F#frag"
    )


def test_removing_an_absent_parameter_returns_the_url_unchanged() -> None:
    """A URL without the named parameters comes back identical."""
    url = "https://b.example/p?q=1#_gs_link=frag"
    assert remove_query_parameters(url, {"_gs_link"}) == url
