"""Opt-in probabilistic bridging between partner domains: match, no match, ambiguity."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.domain.crossdomain.bridging import (
    BridgeCandidate,
    BridgeMatch,
    domain_of,
    fingerprint,
    match_bridge,
    observe_candidate,
)
from shared.errors import SettingsError

SALT = "bridging-salt-0123456789"
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0"
OTHER_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Safari/604.1"
IP = "203.0.113.27"
PARTNERS = ("example.com",)
T = 1_763_800_000_000_000
SECOND = 1_000_000


def _candidate(
    client_id: str = "111.222",
    domain: str = "shop.example.com",
    user_agent: str = UA,
    ip: str = IP,
    time_micros: int = T - 5 * SECOND,
) -> BridgeCandidate:
    hashes = fingerprint(user_agent, ip, SALT)
    return BridgeCandidate(client_id, domain, hashes.user_agent_hash, hashes.ip_hash, time_micros)


def _match(candidates: list[BridgeCandidate], **overrides: Any) -> BridgeMatch:
    arguments: dict[str, Any] = {
        "event_referrer_domain": "https://shop.example.com/cart",
        "user_agent": UA,
        "ip": IP,
        "time_micros": T,
        "candidates": candidates,
        "partner_domains": PARTNERS,
        "salt": SALT,
        "event_domain": "https://checkout.example-pay.com/pay",
        "client_id": "999.888",
    }
    arguments.update(overrides)
    return match_bridge(**arguments)


def test_the_one_recent_hop_from_a_partner_is_matched() -> None:
    """Same user agent and IP on the referring partner within 60 s links to that client."""
    candidate = _candidate()
    match = _match([candidate])
    assert match.ok
    assert match.client_id == "111.222"
    assert match.candidate == candidate


def test_without_candidates_nothing_is_matched() -> None:
    """No recent event on the partner: no link."""
    assert _match([]).failure == "no_candidate"


def test_two_clients_matching_are_ambiguous_and_never_link() -> None:
    """Two distinct clients with the same user agent and IP never link."""
    match = _match([_candidate("111.222"), _candidate("333.444", time_micros=T - SECOND)])
    assert match.failure == "ambiguous"
    assert match.client_id is None


def test_several_events_of_one_client_are_one_match_at_the_latest() -> None:
    """Repeated events of the same client are not ambiguity; the latest is reported."""
    early = _candidate(time_micros=T - 50 * SECOND)
    late = _candidate(time_micros=T - 2 * SECOND)
    match = _match([early, late])
    assert match.client_id == "111.222"
    assert match.candidate == late


@pytest.mark.parametrize(
    ("age_micros", "linked"),
    [(0, True), (60 * SECOND, True), (60 * SECOND + 1, False), (-1, False)],
)
def test_only_hops_within_the_window_before_the_event_count(age_micros: int, linked: bool) -> None:
    """A candidate counts from the event's time back to exactly 60 s, never after it."""
    match = _match([_candidate(time_micros=T - age_micros)])
    assert match.ok is linked


def test_the_window_is_configurable() -> None:
    """A narrower window excludes an older hop."""
    match = _match([_candidate(time_micros=T - 20 * SECOND)], window_micros=10 * SECOND)
    assert match.failure == "no_candidate"


def test_an_ambiguous_rival_outside_the_window_does_not_block() -> None:
    """Only candidates within the window decide ambiguity."""
    stale = _candidate("333.444", time_micros=T - 120 * SECOND)
    assert _match([_candidate(), stale]).client_id == "111.222"


@pytest.mark.parametrize(
    ("user_agent", "ip"),
    [(OTHER_UA, IP), (UA, "198.51.100.7"), (OTHER_UA, "198.51.100.7")],
)
def test_a_different_browser_or_address_is_not_matched(user_agent: str, ip: str) -> None:
    """Both the user agent and the IP must agree."""
    assert _match([_candidate()], user_agent=user_agent, ip=ip).failure == "no_candidate"


@pytest.mark.parametrize("referrer", [None, "", "   "])
def test_an_event_without_a_referrer_is_not_bridged(referrer: str | None) -> None:
    """No referrer, no evidence of a hop."""
    assert _match([_candidate()], event_referrer_domain=referrer).failure == "no_referrer"


def test_a_referrer_that_is_not_a_partner_is_not_bridged() -> None:
    """Only configured partner domains are bridged (opt-in)."""
    match = _match([_candidate()], event_referrer_domain="https://www.google.com/")
    assert match.failure == "not_partner"


def test_with_no_partners_configured_nothing_is_bridged() -> None:
    """An empty partner list switches bridging off."""
    assert _match([_candidate()], partner_domains=()).failure == "not_partner"


def test_a_lookalike_domain_is_not_a_partner() -> None:
    """``badexample.com`` is not a subdomain of ``example.com``."""
    match = _match(
        [_candidate(domain="badexample.com")], event_referrer_domain="https://badexample.com/"
    )
    assert match.failure == "not_partner"


def test_a_subdomain_of_a_partner_is_the_partner() -> None:
    """A referrer and candidate on ``www.`` or ``shop.`` of a partner domain count."""
    match = _match(
        [_candidate(domain="www.example.com")],
        event_referrer_domain="WWW.Example.com:443",
        partner_domains=(" .Example.COM ",),
    )
    assert match.client_id == "111.222"


def test_an_event_on_the_partner_domain_itself_is_not_bridged() -> None:
    """Hops within one partner domain share cookies and need no bridge."""
    match = _match([_candidate()], event_domain="https://www.example.com/")
    assert match.failure == "same_domain"


def test_a_candidate_on_another_partner_than_the_referrer_does_not_count() -> None:
    """The hop must come from the referring partner, not from any partner."""
    other = _candidate(domain="shop.partner-two.com")
    match = _match([other], partner_domains=("example.com", "partner-two.com"))
    assert match.failure == "no_candidate"


def test_the_event_s_own_client_among_the_candidates_needs_no_bridge() -> None:
    """When the cookie already crossed, nothing is aliased."""
    match = _match([_candidate("999.888"), _candidate("111.222")])
    assert match.failure == "already_linked"


def test_fingerprints_hold_no_raw_address_or_agent() -> None:
    """Candidates carry salted hex hashes, never the IP or user agent text."""
    hashes = fingerprint(UA, IP, SALT)
    for value in (hashes.user_agent_hash, hashes.ip_hash, hashes.key):
        assert re.fullmatch(r"[0-9a-f]{32}", value)
        assert IP not in value
    assert hashes.user_agent_hash != hashes.ip_hash


def test_fingerprints_depend_on_the_salt() -> None:
    """Another salt gives unrelated hashes, so the index is useless without it."""
    assert fingerprint(UA, IP, SALT) != fingerprint(UA, IP, SALT + "x")


def test_fingerprints_agree_on_spellings_of_one_address() -> None:
    """Equivalent IPv6 spellings and surrounding spaces hash alike."""
    assert fingerprint(UA, "2001:DB8:0::1", SALT) == fingerprint(f" {UA} ", " 2001:db8::1", SALT)


def test_a_short_salt_is_refused() -> None:
    """A salt under 16 bytes is a deployment error."""
    with pytest.raises(SettingsError):
        fingerprint(UA, IP, "short")


def test_an_observed_event_becomes_a_candidate_of_its_host() -> None:
    """The candidate an event leaves holds its host and hashes, and matches a later hop."""
    candidate = observe_candidate(
        "111.222", "https://Shop.Example.com/cart?x=1", UA, IP, T - SECOND, salt=SALT
    )
    assert candidate is not None
    assert candidate.domain == "shop.example.com"
    assert _match([candidate]).client_id == "111.222"


@pytest.mark.parametrize(
    ("page_location", "user_agent", "ip"),
    [(None, UA, IP), ("https://shop.example.com/", "", IP), ("https://shop.example.com/", UA, " ")],
)
def test_an_event_without_host_agent_or_address_leaves_no_candidate(
    page_location: str | None, user_agent: str, ip: str
) -> None:
    """Nothing to match on, nothing remembered."""
    assert observe_candidate("1.2", page_location, user_agent, ip, T, salt=SALT) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Shop.Example.com:8443/p?q#f", "shop.example.com"),
        ("shop.example.com", "shop.example.com"),
        ("example.com.", "example.com"),
        ("http://[::1/", None),
        ("", None),
        (None, None),
    ],
)
def test_domains_are_read_from_urls_or_hosts(value: str | None, expected: str | None) -> None:
    """Hosts are lowercased, without port or trailing dot; junk yields None."""
    assert domain_of(value) == expected
