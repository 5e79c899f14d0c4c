"""Cross-domain continuity: which canonical client a second domain's client continues.

GA4 counts one session across domains only when both send the same ``client_id``. When
the browser-side linker failed (blocked, ITP), the second domain arrives with a fresh
client id; an event carrying proof of the hop aliases that client to the first one, and
from then on its events are resolved on, and forwarded as, the canonical client.

Proofs, strongest first:

1. ``token``: our signed, expiring, single-use link token (``shared.domain.crossdomain.tokens``), in a
   ``page_location`` query parameter or an event field. Forged, expired and replayed
   tokens never link; each is counted in the logs.
2. ``linker``: GA4's own ``_gl`` parameter, accepted when its checksum matches the
   event's user agent within the current or previous minute (``shared.domain.crossdomain.linker``).
3. ``probabilistic`` (opt-in via ``PARTNER_DOMAINS``): a referrer from a partner domain
   with the same user agent and IP as one recent event there, within 60 seconds
   (``shared.domain.crossdomain.bridging``); ambiguous matches never link.

Trust: a ``_gl`` value or a bridge is evidence, not authentication. Anyone who knows a
client id (a first-party cookie value) can forge a ``_gl`` for it, as anyone can send
that client id to GA4 directly. Deployments that stitch logged-in users across domains
and need a guarantee should use signed tokens and set ``LINKER_ENABLED=false``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from shared.domain.crossdomain.bridging import BridgeCandidate, domain_of, fingerprint, match_bridge, observe_candidate
from shared.domain.events import RawEvent
from shared.domain.crossdomain.tokens import REPLAYED, check_link_token, extract_link_token
from shared.domain.crossdomain.linker import check_linker_param, extract_linker_param
from shared.settings import PrivacySettings

LinkKind = Literal["token", "linker", "probabilistic"]


@dataclass(frozen=True)
class LinkClaim:
    """Evidence that ``event``'s client continues ``canonical_client_id``."""

    kind: LinkKind
    canonical_client_id: str
    token_id: str | None = None
    token_expires_at_seconds: int | None = None


@dataclass(frozen=True)
class Refusal:
    """Evidence that was present but did not link (logged and counted)."""

    kind: LinkKind
    reason: str


class LinkEvidenceStore(Protocol):
    def use_token(self, token_id: str, event_id: str, expires_at_seconds: int) -> bool:
        """Record the token's single use by ``event_id``; False if another event used it."""

    def candidates(self, key: str) -> Sequence[BridgeCandidate]:
        """Recent bridge candidates with this fingerprint key."""

    def remember(self, key: str, candidate: BridgeCandidate, expires: datetime) -> None:
        """Keep ``candidate`` briefly for probabilistic bridging."""


def find_claim(
    event: RawEvent, privacy: PrivacySettings, now_micros: int
) -> tuple[LinkClaim | None, Refusal | None]:
    """The token or linker claim an event carries (pure; single use is checked by the caller)."""
    refusal: Refusal | None = None
    if privacy.link_token_secret:
        token = extract_link_token(event.page_location, privacy.link_token_parameter, event.payload)
        if token:
            check = check_link_token(token, privacy.link_token_secret, now_micros / 1_000_000)
            if check.ok and check.client_id and check.token_id:
                return LinkClaim(
                    "token", check.client_id, check.token_id, check.expires_at_seconds
                ), None
            refusal = Refusal("token", check.failure or "malformed")
    if privacy.linker_enabled and event.user_agent:
        value = extract_linker_param(event.page_location)
        if value:
            linker = check_linker_param(
                value,
                event.user_agent,
                event.time_micros / 1_000_000,
                language=str(event.payload.get("language") or "") or None,
            )
            if linker.ok and linker.client_id:
                return LinkClaim("linker", linker.client_id), refusal
            refusal = refusal or Refusal("linker", linker.failure or "malformed")
    return None, refusal


class CrossDomainLinker:
    """Finds and verifies claims, with the I/O of single use and bridging behind a store."""

    def __init__(self, privacy: PrivacySettings, store: LinkEvidenceStore) -> None:
        self._privacy = privacy
        self._store = store

    def claim(self, event: RawEvent, now_micros: int) -> tuple[LinkClaim | None, Refusal | None]:
        claim, refusal = find_claim(event, self._privacy, now_micros)
        spent = (
            claim is not None
            and claim.token_id
            and claim.token_expires_at_seconds
            and not self._store.use_token(
                claim.token_id, event.event_id, claim.token_expires_at_seconds
            )
        )
        if spent:
            return None, Refusal("token", REPLAYED)
        if claim is None and refusal is None:
            claim, refusal = self._bridge(event)
        if claim is not None and claim.canonical_client_id == event.client_id:
            return None, None
        return claim, refusal

    def _bridge(self, event: RawEvent) -> tuple[LinkClaim | None, Refusal | None]:
        salt = self._privacy.bridging_salt
        if not (self._privacy.partner_domains and salt and event.user_agent and event.ip):
            return None, None
        if not domain_of(event.page_referrer):
            return None, None
        key = fingerprint(event.user_agent, event.ip, salt).key
        match = match_bridge(
            event.page_referrer,
            event.user_agent,
            event.ip,
            event.time_micros,
            candidates=self._store.candidates(key),
            partner_domains=self._privacy.partner_domains,
            salt=salt,
            event_domain=event.page_location,
            client_id=event.client_id,
        )
        if match.ok and match.client_id:
            return LinkClaim("probabilistic", match.client_id), None
        if match.failure in {"ambiguous", "no_candidate"}:
            return None, Refusal("probabilistic", match.failure)
        return None, None

    def observe(self, event: RawEvent, canonical_client_id: str, expires: datetime) -> None:
        """Remember an event on a partner domain so a hop from it can be bridged."""
        salt = self._privacy.bridging_salt
        domain = domain_of(event.page_location)
        if not (salt and event.user_agent and event.ip and domain):
            return
        if not any(domain == d or domain.endswith(f".{d}") for d in self._privacy.partner_domains):
            return
        candidate = observe_candidate(
            canonical_client_id,
            event.page_location,
            event.user_agent,
            event.ip,
            event.time_micros,
            salt=salt,
        )
        if candidate is not None:
            key = fingerprint(event.user_agent, event.ip, salt).key
            self._store.remember(key, candidate, expires)
