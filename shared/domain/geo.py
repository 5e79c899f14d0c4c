"""The Measurement Protocol's ``user_location`` from sGTM's ``event_location``.

MP's ``user_location`` is ``{city, region_id, country_id, subcontinent_id, continent_id}``:
``country_id`` an ISO 3166-1 alpha-2 code, ``region_id`` an ISO 3166-2 code such as
``US-CA``, and the two area ids UN M49 three-digit codes such as ``021`` and ``019``
(https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference).
sGTM puts ``event_location: {country: "BR", region: "SP"}`` into event data when the
request carries geo headers
(https://developers.google.com/tag-platform/tag-manager/server-side/enable-region-specific-settings);
a Google load balancer's subdivision header is CLDR-style, the country glued to the
subdivision (``USCA``, ``usca``); some setups send ``US-CA``; ``city`` may appear.

Rules:

- The country is upper-cased and must be one of the 249 ISO 3166-1 alpha-2 codes; without
  one there is no ``user_location`` at all (``None``). User-assigned codes such as ``XK``
  (Kosovo) and ``UK`` are not ISO codes and are refused.
- The region becomes ``CC-SUB``: a bare subdivision (``SP``) takes the country's prefix,
  a glued one (``USCA``) or a hyphenated one (``us-ca``) is split. ISO 3166-2
  subdivision parts are one to three letters or digits. A region whose country prefix
  disagrees with the country is dropped rather than trusted. A three-character region
  that starts with the country code is read as the glued form (``ESM`` is ``ES-M``), as
  the load balancer emits; bare three-character codes that begin with their own
  country's code (``GB-GBN``) are rare enough to lose.
- ``subcontinent_id`` and ``continent_id`` come from the country through the UN M49
  table (https://unstats.un.org/unsd/methodology/m49/). In Sub-Saharan Africa and in
  Latin America and the Caribbean the intermediate region is used (``005`` South
  America rather than ``419`` Latin America, ``011`` Western Africa rather than ``202``),
  as GA4's subcontinents are; Guernsey and Jersey stay in ``154`` Northern Europe rather
  than M49's ``830`` Channel Islands. Taiwan is placed in ``030`` Eastern Asia.
  Antarctica (``AQ``) has no M49 region, so only its country is sent.
- ``city`` is kept when it is a non-empty string, cut to 100 characters.
- The fallback country (``x-sst-system_properties.uc`` in some sGTM dumps) is used only
  when ``event_location`` has no valid country, and then alone: a region or a city from
  a lookup whose country was unusable is not attached to another source's country.

Without ``event_location``, GA4 derives geography from the request's IP, which an MP
pipeline forwards only through ``user_location`` or ``ip_override``. An IPv4 address
truncated to /24 (IPv6 /48) still resolves the country and region and usually the city;
an IP that is dropped leaves GA4 only the tagging data a browser would have sent, which
a pure MP pipeline does not have, so geography reports show ``(not set)``.

Invariant: :func:`user_location` is pure, takes ``object``, never raises, and returns
either ``None`` or a dict holding ``country_id`` and only validated companions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "CONTINENT_BY_SUBCONTINENT",
    "ISO_COUNTRY_CODES",
    "M49_BY_COUNTRY",
    "user_location",
]

MAX_CITY_CHARS: Final = 100

_AFRICA: Final = "002"
_AMERICAS: Final = "019"
_ASIA: Final = "142"
_EUROPE: Final = "150"
_OCEANIA: Final = "009"

_COUNTRIES_BY_SUBCONTINENT: Final[dict[str, tuple[str, str]]] = {
    "015": (_AFRICA, "DZ EG LY MA SD TN EH"),
    "014": (
        _AFRICA,
        "IO BI KM DJ ER ET TF KE MG MW MU YT MZ RE RW SC SO SS UG TZ ZM ZW",
    ),
    "017": (_AFRICA, "AO CM CF TD CG CD GQ GA ST"),
    "018": (_AFRICA, "BW SZ LS NA ZA"),
    "011": (_AFRICA, "BJ BF CV CI GM GH GN GW LR ML MR NE NG SH SN SL TG"),
    "029": (
        _AMERICAS,
        "AI AG AW BS BB BQ VG KY CU CW DM DO GD GP HT JM MQ MS PR BL KN LC MF VC SX TT TC VI",
    ),
    "013": (_AMERICAS, "BZ CR SV GT HN MX NI PA"),
    "005": (_AMERICAS, "AR BO BV BR CL CO EC FK GF GY PY PE GS SR UY VE"),
    "021": (_AMERICAS, "BM CA GL PM US"),
    "143": (_ASIA, "KZ KG TJ TM UZ"),
    "030": (_ASIA, "CN HK MO KP JP MN KR TW"),
    "035": (_ASIA, "BN KH ID LA MY MM PH SG TH TL VN"),
    "034": (_ASIA, "AF BD BT IN IR MV NP PK LK"),
    "145": (_ASIA, "AM AZ BH CY GE IQ IL JO KW LB OM QA SA PS SY TR AE YE"),
    "151": (_EUROPE, "BY BG CZ HU PL MD RO RU SK UA"),
    "154": (_EUROPE, "AX DK EE FO FI GG IS IE IM JE LV LT NO SJ SE GB"),
    "039": (_EUROPE, "AL AD BA HR GI GR VA IT MT ME MK PT SM RS SI ES"),
    "155": (_EUROPE, "AT BE FR DE LI LU MC NL CH"),
    "053": (_OCEANIA, "AU CX CC HM NZ NF"),
    "054": (_OCEANIA, "FJ NC PG SB VU"),
    "057": (_OCEANIA, "GU KI MH FM NR MP PW UM"),
    "061": (_OCEANIA, "AS CK PF NU PN WS TK TO TV WF"),
}

CONTINENT_BY_SUBCONTINENT: Final[Mapping[str, str]] = {
    sub: continent for sub, (continent, _) in _COUNTRIES_BY_SUBCONTINENT.items()
}
"""UN M49 continent (region) code for each subcontinent code used here."""

M49_BY_COUNTRY: Final[Mapping[str, tuple[str, str]]] = {
    country: (sub, continent)
    for sub, (continent, countries) in _COUNTRIES_BY_SUBCONTINENT.items()
    for country in countries.split()
}
"""ISO 3166-1 alpha-2 code to (subcontinent_id, continent_id)."""

ISO_COUNTRY_CODES: Final[frozenset[str]] = frozenset({*M49_BY_COUNTRY, "AQ"})
"""All 249 officially assigned ISO 3166-1 alpha-2 codes."""

_COUNTRY_SHAPE: Final = re.compile(r"[A-Z]{2}")
_SUBDIVISION: Final = re.compile(r"[A-Z0-9]{1,3}")
_HYPHENATED: Final = re.compile(r"([A-Z]{2})-([A-Z0-9]{1,3})")


def user_location(event_location: object, fallback_country: object = None) -> dict[str, str] | None:
    """MP ``user_location`` from ``event_location``; ``None`` without a valid country."""
    location = event_location if isinstance(event_location, Mapping) else {}
    country = _country(location.get("country"))
    if country is None:
        country = _country(fallback_country)
        return _located(country, None, None) if country else None
    region = _region(location.get("region"), country)
    return _located(country, region, _city(location.get("city")))


def _located(country: str, region: str | None, city: str | None) -> dict[str, str]:
    """The MP block in field order, leaving out what is unknown."""
    block: dict[str, str] = {}
    if city is not None:
        block["city"] = city
    if region is not None:
        block["region_id"] = region
    block["country_id"] = country
    if country in M49_BY_COUNTRY:
        block["subcontinent_id"], block["continent_id"] = M49_BY_COUNTRY[country]
    return block


def _country(value: object) -> str | None:
    """An ISO 3166-1 alpha-2 code, upper-cased, or ``None``."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    return code if _COUNTRY_SHAPE.fullmatch(code) and code in ISO_COUNTRY_CODES else None


def _region(value: object, country: str) -> str | None:
    """``CC-SUB`` for the given country, or ``None`` when absent, malformed or foreign."""
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    hyphenated = _HYPHENATED.fullmatch(text)
    if hyphenated is not None:
        prefix, subdivision = hyphenated.groups()
        return f"{country}-{subdivision}" if prefix == country else None
    if len(text) > 2 and text.startswith(country) and _SUBDIVISION.fullmatch(text[2:]):
        return f"{country}-{text[2:]}"
    return f"{country}-{text}" if _SUBDIVISION.fullmatch(text) else None


def _city(value: object) -> str | None:
    """A non-empty city name of at most 100 characters, or ``None``."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_CITY_CHARS]
