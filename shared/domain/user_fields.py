"""User properties and user-provided data, in the shapes the Measurement Protocol accepts.

User properties. sGTM carries them in ``x-ga-mp2-user_properties`` as a flat map
``{name: value}`` that also holds internal keys (``_npa``, ``_user_id``); some setups send
``user_properties`` already in the Measurement Protocol (MP) shape ``{name: {"value": v}}``.
MP wants ``{name: {"value": v}}`` and ignores or rejects the rest
(https://developers.google.com/analytics/devguides/collection/protocol/ga4/user-properties):

- names are at most 24 characters of ``[A-Za-z][A-Za-z0-9_]*``, and neither start with
  ``_``, ``ga_``, ``google_`` or ``firebase_`` nor are one of ``first_open_time``,
  ``first_visit_time``, ``last_deep_link_referrer``, ``user_id``,
  ``first_open_after_install``; both checks ignore case, since a lookalike of a reserved
  name (``User_ID``) is likelier a mistake than a property, and dropping it costs little;
- values are strings of at most 36 characters or numbers; strings are cut, numbers kept
  as numbers, ``None``, booleans, non-finite floats and containers are left out;
- at most 25 properties; when sources are merged the first source that has a usable
  value for a name wins, so callers pass the most authoritative source first.

User-provided data
(https://developers.google.com/analytics/devguides/collection/ga4/uid-data). MP's
top-level ``user_data`` holds ``sha256_email_address`` (up to 3), ``sha256_phone_number``
(up to 3) and ``address`` (up to 2 of ``sha256_first_name``, ``sha256_last_name``,
``sha256_street``, ``city``, ``region``, ``postal_code``, ``country``). A hash is the
lowercase hex SHA-256 of the normalised value. Normalisation, after trimming and
lower-casing (and Unicode NFC composition, so one spelling of an accented name hashes
once):

- email: all whitespace removed; for ``gmail.com`` and ``googlemail.com`` the periods
  before ``@`` removed; one ``@`` with a dotted domain, or it is not an email;
- phone: E.164, ``+`` and 7 to 15 digits; a leading ``00`` is read as the international
  prefix, and a number still starting with ``0`` is national, its country unknown, so
  it is dropped rather than hashed into a value that can never match;
- first and last name, city, region: letters and spaces only;
- street: letters, digits and spaces only;
- postal code: ``.`` and ``~`` removed, case kept;
- country: an ISO 3166-1 alpha-2 code, sent upper-case (GA4 reads either case).

sGTM event data brings ``user_data`` with plain keys (``email_address`` or gtag's
``email``, ``phone_number``, ``address`` as one mapping or a list) and/or ``sha256_*``
keys the page already hashed, each a string or a list. Already-hashed values must be 64
hex characters and are lower-cased; a 64-hex value found under a plain key is taken as
already hashed rather than hashed twice. City, region, postal code and country travel
unhashed, as GA4 allows.

Invariants: every function takes ``object`` and never raises; no plain email, phone
number, name or street ever appears in the output; an empty result is ``{}``.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from shared.domain.geo import ISO_COUNTRY_CODES

__all__ = [
    "MAX_USER_PROPERTIES",
    "mp_user_properties",
    "normalize_email",
    "normalize_phone",
    "normalized_user_data",
]

MAX_USER_PROPERTIES: Final = 25
MAX_PROPERTY_VALUE_CHARS: Final = 36
MAX_EMAILS: Final = 3
MAX_PHONES: Final = 3
MAX_ADDRESSES: Final = 2

_PROPERTY_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,23}")
_RESERVED_PREFIXES: Final = ("_", "ga_", "google_", "firebase_")
_RESERVED_NAMES: Final = frozenset(
    {
        "first_open_time",
        "first_visit_time",
        "last_deep_link_referrer",
        "user_id",
        "first_open_after_install",
    }
)
_SHA256_HEX: Final = re.compile(r"[0-9A-Fa-f]{64}")
_EMAIL: Final = re.compile(r"[^@]+@[^@.]+(?:\.[^@.]+)+")
_GMAIL_DOMAINS: Final = frozenset({"gmail.com", "googlemail.com"})
_NON_DIGIT: Final = re.compile(r"[^0-9]")
_E164_DIGITS: Final = range(7, 16)

Normaliser = Callable[[object], str | None]


def mp_user_properties(*sources: object) -> dict[str, dict[str, Any]]:
    """MP ``user_properties`` from flat or MP-shaped maps; first usable value per name wins."""
    merged: dict[str, dict[str, Any]] = {}
    for source in sources:
        for name, value in _usable_properties(source):
            if len(merged) >= MAX_USER_PROPERTIES:
                return merged
            merged.setdefault(name, {"value": value})
    return merged


def normalized_user_data(raw: object) -> dict[str, Any]:
    """MP's ``user_data`` block from sGTM's ``user_data``; ``{}`` when nothing is usable."""
    if not isinstance(raw, Mapping):
        return {}
    emails = _hashes(raw, "sha256_email_address", ("email_address", "email"), normalize_email)
    phones = _hashes(raw, "sha256_phone_number", ("phone_number",), normalize_phone)
    addresses = [a for a in map(_address, _mappings(raw.get("address"))) if a]
    block: dict[str, Any] = {
        "sha256_email_address": emails[:MAX_EMAILS],
        "sha256_phone_number": phones[:MAX_PHONES],
        "address": addresses[:MAX_ADDRESSES],
    }
    return {key: values for key, values in block.items() if values}


def normalize_email(value: object) -> str | None:
    """An email as GA4 hashes it, or ``None`` when the value is not an email address."""
    if not isinstance(value, str):
        return None
    text = "".join(unicodedata.normalize("NFC", value).split()).lower()
    if _EMAIL.fullmatch(text) is None:
        return None
    local, domain = text.split("@")
    if domain in _GMAIL_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}" if local else None


def normalize_phone(value: object) -> str | None:
    """A phone number in E.164 (``+`` and digits), or ``None`` when it cannot be one."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    digits = _NON_DIGIT.sub("", text)
    if not text.startswith("+") and digits.startswith("00"):
        digits = digits[2:]
    if digits.startswith("0") or len(digits) not in _E164_DIGITS:
        return None
    return f"+{digits}"


def _usable_properties(source: object) -> Iterator[tuple[str, str | int | float]]:
    """The (name, value) pairs of one source that MP accepts, in the source's order."""
    if not isinstance(source, Mapping):
        return
    for name, raw in source.items():
        value = _property_value(raw.get("value") if isinstance(raw, Mapping) else raw)
        if value is not None and _is_property_name(name):
            yield name, value


def _is_property_name(name: object) -> bool:
    """Whether MP accepts ``name`` as a user property name."""
    if not isinstance(name, str) or _PROPERTY_NAME.fullmatch(name) is None:
        return False
    lowered = name.lower()
    return not lowered.startswith(_RESERVED_PREFIXES) and lowered not in _RESERVED_NAMES


def _property_value(value: object) -> str | int | float | None:
    """A string cut to 36 characters, a finite number, or ``None``."""
    if isinstance(value, str):
        return value[:MAX_PROPERTY_VALUE_CHARS]
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return None


def _hashes(
    raw: Mapping[Any, Any], hashed_key: str, plain_keys: tuple[str, ...], normalise: Normaliser
) -> list[str]:
    """Already-hashed values first, then hashed plain ones, without repeats."""
    found = [h for v in _items(raw.get(hashed_key)) if (h := _valid_hash(v))]
    for key in plain_keys:
        found += [h for v in _items(raw.get(key)) if (h := _hash_plain(v, normalise))]
    return list(dict.fromkeys(found))


def _address(raw: Mapping[Any, Any]) -> dict[str, str]:
    """One MP address: names and street hashed, the coarse parts normalised in clear."""
    address: dict[str, str] = {}
    for field, normalise in _HASHED_ADDRESS_FIELDS.items():
        hashed = _valid_hash(raw.get(f"sha256_{field}")) or _hash_plain(raw.get(field), normalise)
        if hashed:
            address[f"sha256_{field}"] = hashed
    for field, normalise in _CLEAR_ADDRESS_FIELDS.items():
        value = normalise(raw.get(field))
        if value:
            address[field] = value
    return address


def _items(value: object) -> list[object]:
    """A single value or a list of them, as a list."""
    if isinstance(value, list | tuple):
        return list(value)
    return [] if value is None else [value]


def _mappings(value: object) -> list[Mapping[Any, Any]]:
    """One address mapping or a list of them, as a list of mappings."""
    return [item for item in _items(value) if isinstance(item, Mapping)]


def _valid_hash(value: object) -> str | None:
    """A SHA-256 hex digest, lower-cased, or ``None``."""
    if not isinstance(value, str) or _SHA256_HEX.fullmatch(value.strip()) is None:
        return None
    return value.strip().lower()


def _hash_plain(value: object, normalise: Normaliser) -> str | None:
    """The hash of the normalised value; a value that is already a digest is kept as is."""
    already = _valid_hash(value)
    if already is not None:
        return already
    normalised = normalise(value)
    return hashlib.sha256(normalised.encode()).hexdigest() if normalised else None


def _keep(value: object, allowed: Callable[[str], bool]) -> str | None:
    """Lower-cased, trimmed text with only the characters ``allowed`` accepts."""
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFC", value).lower()
    kept = "".join(c for c in text if allowed(c)).strip()
    return kept or None


def _normalize_letters(value: object) -> str | None:
    """Names, city and region: letters and spaces."""
    return _keep(value, lambda c: c.isalpha() or c.isspace())


def _normalize_street(value: object) -> str | None:
    """Street: letters, digits and spaces."""
    return _keep(value, lambda c: c.isalnum() or c.isspace())


def _normalize_postal_code(value: object) -> str | None:
    """Postal code: ``.`` and ``~`` removed, trimmed, case kept."""
    if not isinstance(value, str):
        return None
    return value.replace(".", "").replace("~", "").strip() or None


def _normalize_country(value: object) -> str | None:
    """Country: an ISO 3166-1 alpha-2 code, upper-cased."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    return code if code in ISO_COUNTRY_CODES else None


_HASHED_ADDRESS_FIELDS: Final[Mapping[str, Normaliser]] = {
    "first_name": _normalize_letters,
    "last_name": _normalize_letters,
    "street": _normalize_street,
}
_CLEAR_ADDRESS_FIELDS: Final[Mapping[str, Normaliser]] = {
    "city": _normalize_letters,
    "region": _normalize_letters,
    "postal_code": _normalize_postal_code,
    "country": _normalize_country,
}
