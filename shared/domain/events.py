"""The raw-event contract: GTM SC event data in, a typed ``RawEvent`` out, or a reason why not.

Real event data varies, and every valid variant is normalised rather than rejected:

- ``client_id`` arrives bare (``123.456``), cookie-prefixed (``GA1.1.123.456``) or
  server-managed (``<base64 hash>.<seconds>``); the canonical form drops the ``GA1.n.``
  prefix and keeps everything else.
- The event time comes from ``timestamp_micros``, else ``event_timestamp``,
  ``custom_timestamp`` or ``gtm.start`` (the order the GTM templates use), else the
  message's publish time. Each may be a
  number or a numeric string in seconds, milliseconds or microseconds; the magnitude
  decides which (a 2001-2286 timestamp is 10 digits in seconds, 13 in ms, 16 in µs).
- Consent comes from a ``consent`` object (``granted``/``denied`` or booleans), else from
  ``x-ga-gcd`` (``shared.domain.consent``), else ``x-ga-gcs`` (``G1`` + ad_storage digit +
  analytics_storage digit).

Invariant: ``decode_raw_event`` is pure and raises only ``InvalidEvent``, whose ``reason``
is one of ``REASONS``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shared.domain.consent import ConsentSignals, decode_gcd, decode_gcs, merge
from shared.errors import InvalidEvent

__all__ = [
    "REASONS",
    "Consent",
    "RawEvent",
    "decode_raw_event",
    "normalize_client_id",
    "parse_consent",
    "to_micros",
]


REASONS = frozenset(
    {
        "not_json",
        "not_an_object",
        "missing_client_id",
        "malformed_client_id",
        "missing_event_name",
        "malformed_event_name",
        "unparseable_time",
        "absurd_time",
        "missing_time",
        "missing_event_id",
    }
)

_NUMERIC_CLIENT_ID = re.compile(r"^(\d{1,20})\.(\d{1,20})$")
_PREFIXED_CLIENT_ID = re.compile(r"^GA\d+\.\d+\.(\d{1,20}\.\d{1,20})$", re.IGNORECASE)
_SERVER_CLIENT_ID = re.compile(r"^[A-Za-z0-9+/=_-]{8,200}\.\d{9,11}$")
_EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")

EARLIEST_MICROS = 1_262_304_000_000_000
"""2010-01-01: nothing older is a real GA4 event time."""
LATEST_MICROS = 4_102_444_800_000_000
"""2100-01-01: nothing newer is either."""

TIME_FIELDS = ("timestamp_micros", "event_timestamp", "custom_timestamp", "gtm.start")
CAMPAIGN_PARAMETERS = ("utm_source", "utm_medium", "utm_campaign", "gclid", "dclid", "wbraid")


@dataclass(frozen=True)
class Consent:
    """Consent signals as stated by the event; None means the event did not say."""

    analytics_storage: bool | None = None
    ad_storage: bool | None = None
    ad_user_data: bool | None = None
    ad_personalization: bool | None = None

    @property
    def analytics_denied(self) -> bool:
        return self.analytics_storage is False

    def as_dict(self) -> dict[str, str | None]:
        def word(value: bool | None) -> str | None:
            return None if value is None else ("granted" if value else "denied")

        return {
            "analytics_storage": word(self.analytics_storage),
            "ad_storage": word(self.ad_storage),
            "ad_user_data": word(self.ad_user_data),
            "ad_personalization": word(self.ad_personalization),
        }


@dataclass(frozen=True)
class RawEvent:
    """One decoded raw event. ``payload`` is the data exactly as received."""

    event_id: str
    client_id: str
    incoming_client_id: str
    event_name: str
    time_micros: int
    time_source: str
    user_id: str | None
    stream_id: str | None
    consent: Consent
    page_location: str | None = None
    page_referrer: str | None = None
    user_agent: str | None = None
    ip: str | None = None
    campaign: str | None = None
    client_session_id: int | None = None
    client_session_number: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict, repr=False)


def normalize_client_id(value: Any) -> str:
    """The canonical client id, or ``InvalidEvent`` (missing or malformed)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidEvent("missing_client_id", "client_id is missing or empty")
    if not isinstance(value, str):
        raise InvalidEvent("malformed_client_id", f"client_id is a {type(value).__name__}")
    text = value.strip()
    prefixed = _PREFIXED_CLIENT_ID.match(text)
    if prefixed:
        text = prefixed.group(1)
    if _NUMERIC_CLIENT_ID.match(text) or _SERVER_CLIENT_ID.match(text):
        return text
    raise InvalidEvent("malformed_client_id", f"client_id {value[:80]!r} is not a GA4 client id")


def to_micros(value: Any, name: str) -> int:
    """A timestamp in s, ms or µs (number or numeric string) as µs; raises ``InvalidEvent``."""
    if isinstance(value, bool):
        raise InvalidEvent("unparseable_time", f"{name} is a boolean")
    number: float
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidEvent(
                "unparseable_time", f"{name}={value[:40]!r} is not a number"
            ) from None
    else:
        raise InvalidEvent("unparseable_time", f"{name} is a {type(value).__name__}")
    if math.isnan(number) or number <= 0:
        raise InvalidEvent("unparseable_time", f"{name}={value!r} is not a positive number")
    if number < 1e11:
        micros = int(number * 1_000_000)
    elif number < 1e14:
        micros = int(number * 1_000)
    else:
        micros = int(number)
    if not EARLIEST_MICROS <= micros < LATEST_MICROS:
        raise InvalidEvent("absurd_time", f"{name}={value!r} is outside 2010-2100")
    return micros


def event_time(data: Mapping[str, Any], publish_time_micros: int | None) -> tuple[int, str]:
    """The event's time in µs and the field it came from (``publish_time`` as last resort)."""
    for name in TIME_FIELDS:
        value = data.get(name)
        if value is not None and value != "":
            return to_micros(value, name), name
    if publish_time_micros is None:
        raise InvalidEvent("missing_time", "no event time field and no publish time")
    return publish_time_micros, "publish_time"


def _consent_word(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in {"granted", "true", "1", "yes"}:
            return True
        if word in {"denied", "false", "0", "no"}:
            return False
    return None


def parse_consent(data: Mapping[str, Any]) -> Consent:
    """Consent as stated, most explicit first: a ``consent`` object, then ``x-ga-gcd``
    (all four signals, with the page's updates), then ``x-ga-gcs`` (the two storages)."""
    stated = data.get("consent")
    stated = stated if isinstance(stated, Mapping) else {}
    explicit = ConsentSignals(
        ad_storage=_consent_word(stated.get("ad_storage")),
        analytics_storage=_consent_word(stated.get("analytics_storage")),
        ad_user_data=_consent_word(stated.get("ad_user_data")),
        ad_personalization=_consent_word(stated.get("ad_personalization")),
    )
    signals = merge(explicit, decode_gcd(data.get("x-ga-gcd")), decode_gcs(data.get("x-ga-gcs")))
    return Consent(
        analytics_storage=signals.analytics_storage,
        ad_storage=signals.ad_storage,
        ad_user_data=signals.ad_user_data,
        ad_personalization=signals.ad_personalization,
    )


def _optional_text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _optional_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def campaign_of(page_location: str | None) -> str | None:
    """The campaign an event's landing URL names (utm_* or click ids), or None."""
    if not page_location:
        return None
    try:
        query = parse_qs(urlsplit(page_location).query)
    except ValueError:
        return None
    parts = [f"{name}={query[name][0]}" for name in CAMPAIGN_PARAMETERS if query.get(name)]
    return "&".join(parts) or None


def decode_raw_event(
    data: Mapping[str, Any], message_id: str, publish_time_micros: int | None
) -> RawEvent:
    """Decode GTM SC event data; raises ``InvalidEvent`` with a precise reason."""
    incoming = data.get("client_id")
    client_id = normalize_client_id(incoming)
    name = data.get("event_name")
    if name is None or (isinstance(name, str) and not name.strip()):
        raise InvalidEvent("missing_event_name", "event_name is missing or empty")
    if not isinstance(name, str) or not _EVENT_NAME.match(name.strip()):
        raise InvalidEvent("malformed_event_name", f"event_name {str(name)[:60]!r} is not valid")
    time_micros, time_source = event_time(data, publish_time_micros)
    event_id = _optional_text(data, "event_id") or message_id
    if not event_id:
        raise InvalidEvent("missing_event_id", "no event_id and no message id")
    page_location = _optional_text(data, "page_location")
    stream = _optional_text(data, "x-ga-measurement_id") or _optional_text(data, "measurement_id")
    return RawEvent(
        event_id=event_id[:500],
        client_id=client_id,
        incoming_client_id=str(incoming).strip(),
        event_name=name.strip(),
        time_micros=time_micros,
        time_source=time_source,
        user_id=_optional_text(data, "user_id"),
        stream_id=stream,
        consent=parse_consent(data),
        page_location=page_location,
        page_referrer=_optional_text(data, "page_referrer"),
        user_agent=_optional_text(data, "user_agent"),
        ip=_optional_text(data, "ip_override"),
        campaign=campaign_of(page_location),
        client_session_id=_optional_int(data.get("ga_session_id")),
        client_session_number=_optional_int(data.get("ga_session_number")),
        payload=data,
    )
