"""Cross-domain continuity: which canonical client a second domain's client continues.

GA4 counts one session across domains only when both send the same ``client_id``. When
the browser-side linker failed (blocked, ITP), the second domain arrives with a fresh
client id; an event carrying proof of the hop aliases that client to the first one, and
from then on its events are resolved on, and forwarded as, the canonical client.

Proofs, strongest first:

1. ``token``: our signed, expiring, single-use link token (``crossdomain.tokens``), in
   a ``page_location`` query parameter or an event field. Forged, expired and replayed
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

from dataclasses import dataclass
from typing import Literal

from shared.domain.crossdomain.linker import check_linker_param, extract_linker_param
from shared.domain.crossdomain.tokens import check_link_token, extract_link_token
from shared.domain.events import RawEvent

__all__ = ["LinkClaim", "LinkKind", "LinkRules", "Refusal", "find_claim"]

LinkKind = Literal["token", "linker", "probabilistic"]


@dataclass(frozen=True)
class LinkRules:
    """Which proofs of a cross-domain hop this deployment accepts, and their secrets."""

    token_secret: str | None = None
    token_ttl_seconds: int = 300
    token_parameter: str = "_gs_link"  # noqa: S105 - a URL parameter name
    linker_enabled: bool = True
    """Honour GA4's own ``_gl`` linker parameter."""
    partner_domains: tuple[str, ...] = ()
    """Opt-in probabilistic bridging from these referrer domains (empty: off)."""
    bridging_salt: str | None = None

    @property
    def bridging(self) -> bool:
        return bool(self.partner_domains and self.bridging_salt)


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


def find_claim(
    event: RawEvent, rules: LinkRules, now_micros: int
) -> tuple[LinkClaim | None, Refusal | None]:
    """The token or linker claim an event carries (pure; single use is checked by the caller)."""
    refusal: Refusal | None = None
    if rules.token_secret:
        token = extract_link_token(event.page_location, rules.token_parameter, event.payload)
        if token:
            check = check_link_token(token, rules.token_secret, now_micros / 1_000_000)
            if check.ok and check.client_id and check.token_id:
                return LinkClaim(
                    "token", check.client_id, check.token_id, check.expires_at_seconds
                ), None
            refusal = Refusal("token", check.failure or "malformed")
    if rules.linker_enabled and event.user_agent:
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
