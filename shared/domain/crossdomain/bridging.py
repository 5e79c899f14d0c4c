"""Opt-in probabilistic bridging: continue a visitor's session across partner domains
when no token or linker came along, on the evidence of a hop that just happened.

An event whose referrer is a configured partner domain is linked to the client that, on
that partner domain, sent an event with the same user agent and the same IP within the
last 60 seconds. Invariants:

- Raw IPs and user agents are never stored: candidates hold salted HMAC-SHA256 hashes
  (``fingerprint``), so the index the resolver keeps in Firestore cannot be reversed
  without the salt, and the matcher compares hashes only.
- Only a candidate on the referrer's partner domain counts, and never one on the event's
  own domain (those share cookies and need no bridge).
- Ambiguity never links: two distinct client ids matching is a ``ambiguous`` verdict
  (an office behind one IP, a fleet of identical phones).
- A match is always probabilistic; the caller marks it so in the enriched event and in
  ``identity-links``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from shared.errors import SettingsError

__all__ = [
    "BridgeCandidate",
    "BridgeMatch",
    "domain_of",
    "fingerprint",
    "match_bridge",
    "observe_candidate",
]


DEFAULT_WINDOW_MICROS: Final = 60_000_000
MIN_SALT_BYTES: Final = 16
HASH_CHARS: Final = 32
"""128 bits of HMAC-SHA256 in hex: collisions between visitors are out of reach."""

BridgeFailure = Literal[
    "no_referrer", "not_partner", "same_domain", "no_candidate", "already_linked", "ambiguous"
]


@dataclass(frozen=True)
class Fingerprint:
    """Salted hashes of one browser's user agent and IP."""

    user_agent_hash: str
    ip_hash: str

    @property
    def key(self) -> str:
        """One hash of both, usable as a Firestore document id for the candidate index."""
        joined = f"{self.user_agent_hash}:{self.ip_hash}".encode("ascii")
        return hashlib.sha256(joined).hexdigest()[:HASH_CHARS]


@dataclass(frozen=True)
class BridgeCandidate:
    """A recent event of ``client_id`` on ``domain`` (a host name), remembered briefly."""

    client_id: str
    domain: str
    user_agent_hash: str
    ip_hash: str
    time_micros: int


@dataclass(frozen=True)
class BridgeMatch:
    """The verdict. Invariant: ``ok`` iff ``failure`` is None, and then ``client_id`` is
    the one candidate client to alias to; every match is probabilistic."""

    client_id: str | None = None
    candidate: BridgeCandidate | None = None
    failure: BridgeFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def fingerprint(user_agent: str, ip: str, salt: str | bytes) -> Fingerprint:
    """Salted hashes of a user agent (trimmed) and an IP (canonical form when valid, so
    ``2001:DB8::1`` and ``2001:db8:0::1`` agree). Raises ``SettingsError`` for a salt
    shorter than 16 bytes."""
    key = salt.encode("utf-8") if isinstance(salt, str) else salt
    if len(key) < MIN_SALT_BYTES:
        raise SettingsError(f"the bridging salt must be at least {MIN_SALT_BYTES} bytes")
    return Fingerprint(
        user_agent_hash=_hash(key, "ua", user_agent.strip()),
        ip_hash=_hash(key, "ip", _canonical_ip(ip)),
    )


def observe_candidate(
    client_id: str,
    page_location: str | None,
    user_agent: str,
    ip: str,
    time_micros: int,
    *,
    salt: str | bytes,
) -> BridgeCandidate | None:
    """The candidate an event leaves behind, or None without a page host, a user agent
    or an IP (nothing to match on)."""
    domain = domain_of(page_location)
    if domain is None or not user_agent.strip() or not ip.strip():
        return None
    hashes = fingerprint(user_agent, ip, salt)
    return BridgeCandidate(client_id, domain, hashes.user_agent_hash, hashes.ip_hash, time_micros)


def match_bridge(
    event_referrer_domain: str | None,
    user_agent: str,
    ip: str,
    time_micros: int,
    *,
    candidates: Iterable[BridgeCandidate],
    partner_domains: Collection[str],
    salt: str | bytes,
    event_domain: str | None = None,
    client_id: str | None = None,
    window_micros: int = DEFAULT_WINDOW_MICROS,
) -> BridgeMatch:
    """The one client on the referring partner domain whose event, at most
    ``window_micros`` before ``time_micros``, had this user agent and IP.

    ``event_referrer_domain`` and ``event_domain`` take a host or a URL (``page_referrer``,
    ``page_location``); ``client_id`` is the event's own, which needs no bridge to itself.
    """
    partner = _partner_of(domain_of(event_referrer_domain) or "", partner_domains)
    failure = _out_of_scope(event_referrer_domain, event_domain, partner)
    if failure is not None or partner is None:
        return BridgeMatch(failure=failure or "not_partner")
    hashes = fingerprint(user_agent, ip, salt)
    matching = [
        c
        for c in candidates
        if _belongs(c.domain, partner)
        and c.user_agent_hash == hashes.user_agent_hash
        and c.ip_hash == hashes.ip_hash
        and 0 <= time_micros - c.time_micros <= window_micros
    ]
    clients = {c.client_id for c in matching}
    if client_id is not None and client_id in clients:
        return BridgeMatch(failure="already_linked")
    if not clients:
        return BridgeMatch(failure="no_candidate")
    if len(clients) > 1:
        return BridgeMatch(failure="ambiguous")
    latest = max(matching, key=lambda c: c.time_micros)
    return BridgeMatch(client_id=latest.client_id, candidate=latest)


def domain_of(value: str | None) -> str | None:
    """The lowercase host of a URL or bare host name, without port or trailing dot."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        host = urlsplit(text if "//" in text else f"//{text}").hostname
    except ValueError:
        return None
    return (host or "").rstrip(".") or None


def _out_of_scope(
    referrer_value: str | None, event_value: str | None, partner: str | None
) -> BridgeFailure | None:
    """Why an event cannot be bridged before any candidate is looked at, if it cannot."""
    if domain_of(referrer_value) is None:
        return "no_referrer"
    if partner is None:
        return "not_partner"
    own = domain_of(event_value)
    if own is not None and _belongs(own, partner):
        return "same_domain"
    return None


def _partner_of(host: str, partner_domains: Collection[str]) -> str | None:
    partners = {p.strip().strip(".").lower() for p in partner_domains} - {""}
    matches = [p for p in partners if _belongs(host, p)]
    return max(matches, key=len) if matches else None


def _belongs(host: str, domain: str) -> bool:
    return host == domain or host.endswith(f".{domain}")


def _canonical_ip(ip: str) -> str:
    text = ip.strip()
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text


def _hash(key: bytes, label: str, value: str) -> str:
    digest = hmac.new(key, f"{label}:{value}".encode(), hashlib.sha256).hexdigest()
    return digest[:HASH_CHARS]
