"""A session's traffic source, decided once from its landing (first) event.

Measurement Protocol events get no attribution from a ``page_location``'s UTMs or from
``page_referrer``; GA4 only attributes them through a ``campaign_details`` event, which
applies to events at or after its own timestamp. So the server classifies each session's
landing the way GA4's tag would and sends what it decided as ``campaign_details``.

Rules, first match wins:

1. Google click id (``gclid``, ``dclid``, ``gbraid``, ``wbraid``, checked in that order)
   in the landing query: ``google / cpc``, ``click_id`` names the parameter. UTMs on the
   same URL do not change source or medium (auto-tagging wins, as in GA4 with auto-tagging
   on), but ``utm_campaign``, ``utm_term``, ``utm_content`` and ``utm_id`` are kept; the
   campaign is ``(not set)`` without ``utm_campaign``.
2. Any of ``utm_source``, ``utm_medium``, ``utm_campaign``, ``utm_term``, ``utm_content``,
   ``utm_id`` in the landing query: a tagged landing. A missing source or medium reads
   ``(not set)``, a missing campaign ``(not set)``; values keep the case they were sent in.
3. A referrer from a known search engine (``SEARCH_ENGINES``): the engine's name,
   ``organic``, campaign ``(organic)``. ``android-app://com.google.android.googlequicksearchbox``
   (the Google app) is Google organic.
4. Any other referrer: its host without a leading ``www.``, ``referral``, ``(referral)``.
5. Otherwise: ``(direct) / (none)``, campaign ``(direct)`` (``DIRECT``).

Invariants:

- Parameter names are matched case-insensitively; values are percent- and plus-decoded
  and trimmed, and a blank value is an absent one. The first non-blank value wins.
- Only the query is read: GA4 ignores UTMs in a fragment, and so does this module.
- A referrer on the landing page's own site, or on a domain of ``ignored_domains`` (the
  host itself or any subdomain of it), is no referrer at all, whatever engine it is: the
  landing falls through to direct. Two hosts are on the same site when their last two
  labels agree, or their last three when the second-to-last is a second-level label of a
  country code (``co.uk``, ``com.br``, ``ne.jp``).
- Only ``http``, ``https`` and ``android-app`` referrers count; ``javascript:``,
  ``about:blank``, bare words and malformed URLs read as no referrer.
- ``classify_landing`` never raises and always returns ``source``, ``medium`` and
  ``campaign``; ``term``, ``content``, ``campaign_id`` and ``click_id`` may be None.
- ``TrafficSource.from_dict(s.as_dict()) == s`` for every source ``s``, and ``as_dict``
  of a decoded dict gives back that dict.

Where this departs from GA4 (whose classifier is not public, so rules 1-4 are an
approximation of what its tag reports, not a copy):

- The search-engine list and the names it reports are this module's; GA4's own list is
  longer, and an engine missing here is reported as a referral.
- Organic terms are left None rather than ``(not provided)``: the term is not known, and
  sending a placeholder would be reported as if it were one.
- ``dclid`` is reported as ``google / cpc``; GA4 with a linked Display & Video 360 or
  Campaign Manager account can report more precise values.
- Same-site is decided without the Public Suffix List: shops on a shared platform domain
  (``a.myshopify.com``, ``b.myshopify.com``) count as one site.
- Other ad click ids (``fbclid``, ``msclkid``, ``ttclid``) and GA4's ``_gl`` linker are not
  sources: GA4 does not attribute them either, and the referrer decides.
- A landing that classifies as direct is not replaced with the previous session's source
  (GA4's last non-direct click); that is a reporting concern outside this module.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, parse_qsl, urlsplit

__all__ = [
    "CAMPAIGN_VALUE_LIMIT",
    "CLICK_ID_PARAMETERS",
    "DIRECT",
    "NOT_SET",
    "SEARCH_ENGINES",
    "UTM_PARAMETERS",
    "TrafficSource",
    "classify_landing",
    "is_ignored_referrer",
    "is_same_site",
    "search_engine_of",
]

CAMPAIGN_VALUE_LIMIT: Final = 100
"""GA4 cuts event parameter values at 100 characters; ``campaign_details`` obeys it."""

NOT_SET: Final = "(not set)"
"""What GA4 reports for a source, medium or campaign a tagged landing left out."""

CLICK_ID_PARAMETERS: Final = ("gclid", "dclid", "gbraid", "wbraid")
"""Google Ads auto-tagging parameters, in the order they are preferred."""

UTM_PARAMETERS: Final = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_id",
)
"""Campaign tagging parameters; any one of them makes a landing tagged."""

_COUNTRY_SECOND_LEVELS: Final = frozenset(
    {"ac", "co", "com", "edu", "gob", "gov", "go", "ltd", "mil", "ne", "net", "or", "org"}
)

_TLD: Final = rf"(?:(?:{'|'.join(sorted(_COUNTRY_SECOND_LEVELS))})\.)?[a-z]{{2,}}"

SEARCH_ENGINES: Final[tuple[tuple[str, str], ...]] = (
    ("google", rf"google\.{_TLD}"),
    ("bing", r"(?:cn\.)?bing\.com"),
    ("yahoo", rf"(?:[a-z]{{1,3}}\.)?search\.yahoo\.{_TLD}"),
    ("duckduckgo", r"duckduckgo\.com"),
    ("baidu", r"baidu\.com"),
    ("yandex", rf"yandex\.{_TLD}|ya\.ru"),
    ("ecosia", r"ecosia\.org"),
    ("naver", r"search\.naver\.com"),
    ("seznam", r"(?:search\.)?seznam\.cz"),
    ("qwant", r"(?:lite\.)?qwant\.com"),
    ("startpage", r"(?:[a-z]{2}\.)?startpage\.(?:com|nl)"),
    ("brave", r"search\.brave\.com"),
    ("aol", rf"search\.aol\.{_TLD}"),
    ("ask", r"(?:[a-z]{2}\.)?ask\.com"),
    ("sogou", r"(?:wap\.)?sogou\.com"),
    ("daum", r"search\.daum\.net"),
    ("mojeek", r"mojeek\.(?:com|co\.uk)"),
)
"""(name reported as source, host pattern); a host matches after ``www.`` or ``m.``."""

_SEARCH_PATTERNS: Final = tuple(
    (name, re.compile(rf"(?:www\.|m\.)?(?:{pattern})")) for name, pattern in SEARCH_ENGINES
)
_SEARCH_APPS: Final = {"com.google.android.googlequicksearchbox": "google"}
_REFERRER_SCHEMES: Final = frozenset({"http", "https", "android-app"})
_HOST: Final = re.compile(r"[^\s./:@]+(?:\.[^\s./:@]+)*")


@dataclass(frozen=True)
class TrafficSource:
    """Where a session came from, in GA4's session source/medium/campaign terms.

    ``click_id`` names the auto-tagging parameter that decided a paid source (None
    otherwise); it is kept for audit and is not part of ``campaign_details``.
    """

    source: str
    medium: str
    campaign: str
    term: str | None = None
    content: str | None = None
    campaign_id: str | None = None
    click_id: str | None = None

    def campaign_details(self) -> dict[str, str]:
        """The MP ``campaign_details`` params: blanks left out, values cut to GA4's limit."""
        values = {
            "campaign_id": self.campaign_id,
            "campaign": self.campaign,
            "source": self.source,
            "medium": self.medium,
            "term": self.term,
            "content": self.content,
        }
        return {k: v[:CAMPAIGN_VALUE_LIMIT] for k, v in values.items() if v and v.strip()}

    def as_dict(self) -> dict[str, str | None]:
        """Every field by name, None kept, so stored and enriched copies have one shape."""
        return {
            "source": self.source,
            "medium": self.medium,
            "campaign": self.campaign,
            "term": self.term,
            "content": self.content,
            "campaign_id": self.campaign_id,
            "click_id": self.click_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TrafficSource:
        """The inverse of ``as_dict``; unknown keys are ignored so a newer writer's extra
        fields do not break an older reader. Raises ValueError when ``source``, ``medium``
        or ``campaign`` is missing, TypeError when a field is neither text nor None."""
        return cls(
            source=_required_text(data, "source"),
            medium=_required_text(data, "medium"),
            campaign=_required_text(data, "campaign"),
            term=_optional_text(data, "term"),
            content=_optional_text(data, "content"),
            campaign_id=_optional_text(data, "campaign_id"),
            click_id=_optional_text(data, "click_id"),
        )


DIRECT: Final = TrafficSource(source="(direct)", medium="(none)", campaign="(direct)")


def classify_landing(
    page_location: str | None,
    page_referrer: str | None,
    *,
    ignored_domains: Collection[str] = (),
) -> TrafficSource:
    """The traffic source of a session whose first event has these URLs (rules above)."""
    landing = _split(page_location)
    query = _query_values(landing.query if landing else "")
    paid = _paid_source(query)
    if paid is not None:
        return paid
    if any(name in query for name in UTM_PARAMETERS):
        return _tagged_source(query)
    return _referred_source(page_referrer, landing, ignored_domains)


def search_engine_of(referrer_host: str) -> str | None:
    """The name GA4-style reports give the search engine at ``referrer_host``, else None."""
    host = referrer_host.lower().rstrip(".")
    if host in _SEARCH_APPS:
        return _SEARCH_APPS[host]
    return next((name for name, rx in _SEARCH_PATTERNS if rx.fullmatch(host)), None)


def is_same_site(host: str, other: str) -> bool:
    """Whether two hosts belong to one site (same last two labels, or three after a
    country's second-level label); IP addresses and single labels must be equal."""
    return _site_of(host.lower().rstrip(".")) == _site_of(other.lower().rstrip("."))


def is_ignored_referrer(referrer_host: str, ignored_domains: Collection[str]) -> bool:
    """Whether ``referrer_host`` is an ignored domain or a subdomain of one; entries may
    be written ``example.com``, ``.example.com`` or ``*.example.com``, in any case."""
    host = referrer_host.lower().rstrip(".")
    for entry in ignored_domains:
        domain = entry.strip().lower().removeprefix("*").strip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def _paid_source(query: Mapping[str, str]) -> TrafficSource | None:
    """``google / cpc`` when an auto-tagging click id is present, keeping UTM details."""
    click_id = next((name for name in CLICK_ID_PARAMETERS if name in query), None)
    if click_id is None:
        return None
    return TrafficSource(
        source="google",
        medium="cpc",
        campaign=query.get("utm_campaign", NOT_SET),
        term=query.get("utm_term"),
        content=query.get("utm_content"),
        campaign_id=query.get("utm_id"),
        click_id=click_id,
    )


def _tagged_source(query: Mapping[str, str]) -> TrafficSource:
    """The UTM-tagged source, with ``(not set)`` where source, medium or campaign is missing."""
    return TrafficSource(
        source=query.get("utm_source", NOT_SET),
        medium=query.get("utm_medium", NOT_SET),
        campaign=query.get("utm_campaign", NOT_SET),
        term=query.get("utm_term"),
        content=query.get("utm_content"),
        campaign_id=query.get("utm_id"),
    )


def _referred_source(
    page_referrer: str | None, landing: SplitResult | None, ignored: Collection[str]
) -> TrafficSource:
    """Organic, referral or direct, from a referrer that is not the site's own."""
    host = _referrer_host(page_referrer)
    landing_host = _host_of(landing) if landing else None
    if host is None or is_ignored_referrer(host, ignored):
        return DIRECT
    if landing_host is not None and is_same_site(host, landing_host):
        return DIRECT
    engine = search_engine_of(host)
    if engine is not None:
        return TrafficSource(source=engine, medium="organic", campaign="(organic)")
    return TrafficSource(source=host.removeprefix("www."), medium="referral", campaign="(referral)")


def _referrer_host(page_referrer: str | None) -> str | None:
    """The host of a web or Android-app referrer; None for anything else."""
    parts = _split(page_referrer)
    if parts is None or parts.scheme.lower() not in _REFERRER_SCHEMES:
        return None
    return _host_of(parts)


def _host_of(parts: SplitResult) -> str | None:
    """The URL's lower-cased host without port or trailing dot, if it looks like one."""
    host = (parts.hostname or "").rstrip(".")
    return host if _HOST.fullmatch(host) else None


def _split(url: str | None) -> SplitResult | None:
    """``urlsplit`` that reads a malformed or missing URL as None instead of raising."""
    if not url:
        return None
    try:
        return urlsplit(url.strip())
    except ValueError:
        return None


def _query_values(query: str) -> dict[str, str]:
    """The first non-blank, decoded, trimmed value of each lower-cased parameter name."""
    values: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        name, text = key.strip().lower(), value.strip()
        if text and name not in values:
            values[name] = text
    return values


def _site_of(host: str) -> str:
    """The registrable-ish part of ``host`` that same-site comparison uses."""
    labels = host.split(".")
    if len(labels) < 2 or _is_ip_address(host):
        return host
    country_second_level = len(labels[-1]) == 2 and labels[-2] in _COUNTRY_SECOND_LEVELS
    keep = 3 if len(labels) > 2 and country_second_level else 2
    return ".".join(labels[-keep:])


def _is_ip_address(host: str) -> bool:
    """Whether ``host`` is a literal IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _required_text(data: Mapping[str, object], name: str) -> str:
    """``data[name]`` when it is text; a stored source without it is corrupt."""
    value = data.get(name)
    if value is None:
        raise ValueError(f"traffic source field {name!r} is missing")
    if not isinstance(value, str):
        raise TypeError(f"traffic source field {name!r} must be text, got {value!r}")
    return value


def _optional_text(data: Mapping[str, object], name: str) -> str | None:
    """``data[name]`` when it is text or absent (None)."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"traffic source field {name!r} must be text or None, got {value!r}")
    return value
