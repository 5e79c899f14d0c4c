"""Finding and spending cross-domain evidence: the claim rules of ``domain.crossdomain``
with the I/O of single-use tokens and bridge candidates behind ``LinkEvidenceStore``."""

from __future__ import annotations

from datetime import datetime

from shared.domain.crossdomain.bridging import (
    domain_of,
    fingerprint,
    match_bridge,
    observe_candidate,
)
from shared.domain.crossdomain.claims import LinkClaim, LinkRules, Refusal, find_claim
from shared.domain.crossdomain.tokens import REPLAYED
from shared.domain.events import RawEvent
from shared.ports import LinkEvidenceStore

__all__ = ["CrossDomainLinker"]


class CrossDomainLinker:
    """Finds and verifies claims, with the I/O of single use and bridging behind a store."""

    def __init__(self, rules: LinkRules, store: LinkEvidenceStore) -> None:
        self._rules = rules
        self._store = store

    def claim(self, event: RawEvent, now_micros: int) -> tuple[LinkClaim | None, Refusal | None]:
        claim, refusal = find_claim(event, self._rules, now_micros)
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
        salt = self._rules.bridging_salt
        if not (self._rules.partner_domains and salt and event.user_agent and event.ip):
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
            partner_domains=self._rules.partner_domains,
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
        salt = self._rules.bridging_salt
        domain = domain_of(event.page_location)
        if not (salt and event.user_agent and event.ip and domain):
            return
        if not any(domain == d or domain.endswith(f".{d}") for d in self._rules.partner_domains):
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
