"""Enriched event -> one Measurement Protocol request (pure, no I/O, no clock).

Judged by what GA4's reports show, against what GA4's own tag would have recorded: a
pure MP pipeline sends no tagging hits, so GA4 has nothing to join device, geo or traffic
source from, and every report dimension must travel in the request itself.

Invariants:
- ``client_id`` is the canonical one (``resolved.client_id``), never the incoming one, so
  cross-domain hops land in one GA4 session.
- ``user_id`` is sent only when ``resolved.user_id`` is set (never the raw field: the
  resolver has already applied logout, consent and PII rules to it).
- Every event carries ``engagement_time_msec`` > 0 and, when the resolver kept state,
  an integer ``session_id`` and ``session_number``; GA4 counts users as active only then.
- Transport and system fields of the GTM SC event data (``x-ga-*``, ``x-sst-*``, ``gtm.*``,
  ids, timestamps, consent, ``user_data``) never become event parameters. Everything else
  is offered as a parameter; ``shared.domain.validation`` decides what GA4 accepts.
- Parameter order is significant: session and page parameters come first, so when the
  validator trims an event to 25 parameters it drops custom ones.
- Device: a full ``device`` object from client hints and the parsed user agent, or the
  raw ``user_agent`` alone when the parser cannot name category, browser and OS; never
  both, because GA4 ignores ``user_agent`` whenever ``device`` is present.
- Geo: ``user_location`` from the container's ``event_location`` when present, else
  ``ip_override`` per ``IP_MODE``; never both, because ``user_location`` hides the IP.
- Traffic source: the session's source, decided by the resolver from its landing event,
  goes out as a ``campaign_details`` event ahead of the session's earliest event, in the
  same request and at the same timestamp (GA4 applies it from its timestamp on).
- ``user_engagement`` (reserved for GA4's own tag) is forwarded as ``page_engagement``
  with its engagement time, so a session's engagement adds up as GA4's tag would add it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from shared.domain.consent import ConsentSignals, mp_consent
from shared.domain.device import describe_device
from shared.domain.geo import user_location
from shared.domain.privacy import apply_ip_policy
from shared.domain.traffic import TrafficSource
from shared.domain.user_fields import mp_user_properties, normalized_user_data
from shared.errors import InvalidEvent

__all__ = [
    "MeasurementRequest",
    "PayloadRules",
    "build_request",
    "engagement_time",
    "route_stream",
]


SYSTEM_FIELDS = frozenset(
    {
        "client_id",
        "user_id",
        "ip_override",
        "user_agent",
        "ga_session_id",
        "ga_session_number",
        "session_id",
        "session_number",
        "engagement_time_msec",
        "event_name",
        "event_id",
        "timestamp_micros",
        "event_timestamp",
        "custom_timestamp",
        "consent",
        "user_data",
        "user_properties",
        "user_location",
        "device",
        "language",
        "screen_resolution",
        "measurement_id",
        "page_location",
        "page_referrer",
        "page_title",
        "items",
        "resolved",
        "_gl",
        "client_hints",
        "event_location",
    }
)
ENGAGEMENT_EVENT: Final = "user_engagement"
ENGAGEMENT_EVENT_FORWARDED_AS: Final = "page_engagement"
"""GA4 reserves ``user_engagement`` for its own tag; the hit's engagement time still counts."""
CAMPAIGN_EVENT: Final = "campaign_details"
SYSTEM_PREFIXES = ("x-ga-", "x-sst-", "gtm.")
PAGE_PARAMS = ("page_location", "page_referrer", "page_title")


@dataclass(frozen=True)
class PayloadRules:
    """What the deployment asks of every request: routing, defaults, parameter filters."""

    default_measurement_id: str
    stream_routes: Mapping[str, str] = field(default_factory=dict)
    default_engagement_time_msec: int = 1
    """Sent when an event has none: GA4 counts a user active only with a positive value,
    and the smallest one adds no engagement the page did not report."""
    param_allow: frozenset[str] = frozenset()
    """Custom parameters kept (empty: all). Session and page parameters are always kept."""
    param_deny: frozenset[str] = frozenset()
    """Parameters never sent (raw names), page parameters included."""
    param_renames: Mapping[str, str] = field(default_factory=dict)
    """Raw name -> GA4 name, applied after allow/deny."""
    ip_mode: str = "pass"
    ignored_params: frozenset[str] = frozenset()
    """Further raw fields that are transport, not data (the link token parameter)."""

    @property
    def measurement_ids(self) -> frozenset[str]:
        return frozenset({self.default_measurement_id, *self.stream_routes.values()})


@dataclass(frozen=True)
class Resolved:
    """The fields of ``resolved`` the forwarder relies on, checked once."""

    event_id: str
    event_name: str
    client_id: str
    timestamp_micros: int
    user_id: str | None = None
    session_id: int | None = None
    session_number: int | None = None
    stream_id: str | None = None
    consent: Mapping[str, str | None] = field(default_factory=dict)
    traffic_source: Mapping[str, Any] | None = None
    earliest_in_session: bool = False


@dataclass(frozen=True)
class MeasurementRequest:
    """One MP request for one enriched event, before validation."""

    measurement_id: str
    event_id: str
    client_id: str
    timestamp_micros: int
    body: Mapping[str, Any]


def _text(resolved: Mapping[str, Any], name: str) -> str:
    value = resolved.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent("bad_enriched_event", f"resolved.{name} must be a non-empty string")
    return value


def _optional_int(resolved: Mapping[str, Any], name: str) -> int | None:
    value = resolved.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent("bad_enriched_event", f"resolved.{name} must be an integer or null")
    return value


def parse_resolved(event: Mapping[str, Any]) -> Resolved:
    """The ``resolved`` object of an enriched event, or ``InvalidEvent`` naming the field."""
    resolved = event.get("resolved")
    if not isinstance(resolved, Mapping):
        raise InvalidEvent("bad_enriched_event", "the event has no 'resolved' object")
    timestamp = _optional_int(resolved, "timestamp_micros")
    if timestamp is None:
        raise InvalidEvent("bad_enriched_event", "resolved.timestamp_micros is required")
    user_id = resolved.get("user_id")
    stream_id = resolved.get("stream_id")
    consent = resolved.get("consent")
    return Resolved(
        event_id=_text(resolved, "event_id"),
        event_name=_text(resolved, "event_name"),
        client_id=_text(resolved, "client_id"),
        timestamp_micros=timestamp,
        user_id=user_id if isinstance(user_id, str) and user_id else None,
        session_id=_optional_int(resolved, "session_id"),
        session_number=_optional_int(resolved, "session_number"),
        stream_id=stream_id if isinstance(stream_id, str) and stream_id else None,
        consent=dict(consent) if isinstance(consent, Mapping) else {},
        traffic_source=_traffic_source(resolved.get("traffic_source")),
        earliest_in_session=resolved.get("earliest_in_session") is True,
    )


def _traffic_source(value: object) -> Mapping[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    try:
        return TrafficSource.from_dict(value).campaign_details()
    except (TypeError, ValueError):
        return None


def route_stream(page_location: object, routes: Mapping[str, str], default: str) -> str:
    """The measurement id for a page: exact host first, then the longest ``*.suffix``; a
    malformed URL (``http://[bad``) has no host, so it goes to ``default``."""
    try:
        host = urlsplit(page_location).hostname if isinstance(page_location, str) else None
    except ValueError:
        host = None
    if not host:
        return default
    if host in routes:
        return routes[host]
    suffixes = [p for p in routes if p.startswith("*.") and host.endswith(p[1:])]
    return routes[max(suffixes, key=len)] if suffixes else default


def choose_stream(event: Mapping[str, Any], resolved: Resolved, rules: PayloadRules) -> str:
    """The resolver's stream when it is one we serve (its sessions are per stream)."""
    if resolved.stream_id is not None and resolved.stream_id in rules.measurement_ids:
        return resolved.stream_id
    return route_stream(
        event.get("page_location"), rules.stream_routes, rules.default_measurement_id
    )


def engagement_time(value: object, default: int) -> int:
    """The event's own engagement time when it is a positive number, else ``default``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default
    try:
        msec = int(float(value))
    except (ValueError, OverflowError):
        return default
    return msec if msec > 0 else default


def _ip(ip: object, mode: str) -> str | None:
    """``IP_MODE`` applied to the raw ``ip_override`` (see ``shared.domain.privacy``)."""
    return apply_ip_policy(ip, mode) if isinstance(ip, str) and ip else None


def _is_system(name: str, rules: PayloadRules) -> bool:
    return name in SYSTEM_FIELDS or name in rules.ignored_params or name.startswith(SYSTEM_PREFIXES)


def event_params(
    event: Mapping[str, Any], resolved: Resolved, rules: PayloadRules
) -> dict[str, Any]:
    """Session and page parameters first, then custom ones, filtered and renamed."""
    params: dict[str, Any] = {}
    if resolved.session_id is not None:
        params["session_id"] = resolved.session_id
    params["engagement_time_msec"] = engagement_time(
        event.get("engagement_time_msec"), rules.default_engagement_time_msec
    )
    if resolved.session_number is not None:
        params["session_number"] = resolved.session_number
    for name in PAGE_PARAMS:
        if event.get(name) not in (None, "") and name not in rules.param_deny:
            params[name] = event[name]
    for name, value in event.items():
        if _is_system(name, rules) or name in rules.param_deny or value is None:
            continue
        if rules.param_allow and name not in rules.param_allow:
            continue
        params.setdefault(rules.param_renames.get(name, name), value)
    if isinstance(event.get("items"), list) and "items" not in rules.param_deny:
        params["items"] = event["items"]
    return params


def consent_block(event: Mapping[str, Any], resolved: Resolved) -> dict[str, str]:
    """MP ``consent`` from the resolved signals, with non-personalised ads (``x-ga-npa``
    or the ``_npa`` user property) denying ad personalization; unstated signals left out."""
    words = resolved.consent
    signals = ConsentSignals(
        ad_user_data=_granted(words.get("ad_user_data")),
        ad_personalization=_granted(words.get("ad_personalization")),
    )
    flat = event.get("x-ga-mp2-user_properties")
    return dict(
        mp_consent(
            signals,
            npa=event.get("x-ga-npa"),
            user_properties=flat if isinstance(flat, Mapping) else None,
        )
    )


def _granted(word: object) -> bool | None:
    if isinstance(word, str) and word.lower() in {"granted", "denied"}:
        return word.lower() == "granted"
    return None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def device_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """``{"device": {...}}`` or ``{"user_agent": "..."}`` (see the module invariants)."""
    hints = event.get("client_hints")
    choice = describe_device(
        _text_or_none(event.get("user_agent")),
        hints if isinstance(hints, Mapping) else None,
        _text_or_none(event.get("language")),
        _text_or_none(event.get("screen_resolution")),
    )
    if choice.device:
        return {"device": choice.device}
    return {"user_agent": choice.user_agent} if choice.user_agent else {}


def location_fields(event: Mapping[str, Any], ip_mode: str) -> dict[str, Any]:
    """``{"user_location": {...}}`` from ``event_location``, else ``{"ip_override": ...}``."""
    system = event.get("x-sst-system_properties")
    fallback = system.get("uc") if isinstance(system, Mapping) else None
    location = user_location(event.get("event_location"), fallback)
    if location:
        return {"user_location": location}
    ip = _ip(event.get("ip_override"), ip_mode)
    return {"ip_override": ip} if ip else {}


def _events(
    event: Mapping[str, Any], resolved: Resolved, rules: PayloadRules
) -> list[dict[str, Any]]:
    name = resolved.event_name
    if name == ENGAGEMENT_EVENT:
        name = ENGAGEMENT_EVENT_FORWARDED_AS
    events = [{"name": name, "params": event_params(event, resolved, rules)}]
    if resolved.earliest_in_session and resolved.traffic_source:
        params: dict[str, Any] = dict(resolved.traffic_source)
        if resolved.session_id is not None:
            params["session_id"] = resolved.session_id
        events.insert(0, {"name": CAMPAIGN_EVENT, "params": params})
    return events


def build_request(event: Mapping[str, Any], rules: PayloadRules) -> MeasurementRequest:
    """The MP request for one enriched event; ``InvalidEvent`` if ``resolved`` is unusable."""
    resolved = parse_resolved(event)
    body: dict[str, Any] = {"client_id": resolved.client_id}
    if resolved.user_id is not None:
        body["user_id"] = resolved.user_id
    body["timestamp_micros"] = resolved.timestamp_micros
    optional = {
        "user_properties": mp_user_properties(
            event.get("user_properties"), event.get("x-ga-mp2-user_properties")
        ),
        "consent": consent_block(event, resolved),
        "user_data": normalized_user_data(event.get("user_data")),
        **location_fields(event, rules.ip_mode),
        **device_fields(event),
    }
    body.update((key, value) for key, value in optional.items() if value)
    body["events"] = _events(event, resolved, rules)
    return MeasurementRequest(
        measurement_id=choose_stream(event, resolved, rules),
        event_id=resolved.event_id,
        client_id=resolved.client_id,
        timestamp_micros=resolved.timestamp_micros,
        body=body,
    )
