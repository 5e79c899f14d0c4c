"""PII rules: what never leaves ga4-stitch raw, and what replaces it.

GA4 forbids personal data in ``user_id`` and parameters, and ga4-stitch stores state per
user. Invariants:

- A user id that looks like an email address or a phone number is never stored or
  forwarded raw: it becomes ``h_`` + HMAC-SHA256 hex (``hash`` mode) or is removed
  (``drop`` mode). ``h_`` tells downstream the value is a pseudonym, and the HMAC is
  deterministic, so the same person keeps one pseudonym and stitching still works.
- ``hash`` mode without a secret drops instead, and says so (``dropped_no_secret``): an
  unkeyed hash of an email or phone number is reversed by hashing a list of candidates
  (phone numbers are a small space), so it would be PII in disguise. Dropping loses the
  stitching; leaking would lose the GA4 property.
- Emails are hashed lowercase and trimmed, phone numbers as ``+`` and digits, so one
  person's spellings share a pseudonym.
- A false positive costs little in ``hash`` mode (a stable pseudonym instead of the id),
  a false negative leaks: detection leans to flagging, yet leaves alone the ids sites
  really use (``cust-000981``, UUIDs, numeric ids without a phone's shape).
- ``user_data`` (GA4 user-provided data) leaves as GA4 requires it: emails, phone numbers,
  names and streets normalised and SHA-256 hashed (``shared.domain.user_fields``; values the
  page already hashed are kept), city, region, postal code and country plain, anything
  else removed. Nothing raw that GA4 wants hashed is stored or published.
- IPs are never stored; before forwarding they pass, are truncated (IPv4 /24, IPv6 /48,
  as GA4's own IP anonymization did) or are removed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal, NamedTuple
from urllib.parse import unquote

from shared.domain.events import RawEvent
from shared.domain.user_fields import normalized_user_data
from shared.errors import SettingsError

__all__ = [
    "PrivacyRules",
    "apply_ip_policy",
    "apply_user_id_policy",
    "looks_like_pii",
    "normalize_pii",
    "protect",
    "pseudonymize",
    "scrub_parameters",
    "truncate_ip",
]


PSEUDONYM_PREFIX: Final = "h_"
MIN_SECRET_BYTES: Final = 16
USER_DATA_FIELD: Final = "user_data"
HASHED_FIELD_PREFIX: Final = "sha256_"

PiiKind = Literal["email", "phone"]
UserIdAction = Literal["kept", "hashed", "dropped", "dropped_no_secret"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE_CHARS = re.compile(r"\+?[0-9 ().\-/]+")
_SEPARATOR = re.compile(r"[ ().\-/]")
_INTERNATIONAL_PREFIX = re.compile(r"00[1-9]")
_NATIONAL = re.compile(r"0[1-9][0-9]{8,10}")
_TEL_SCHEME = re.compile(r"tel:", re.IGNORECASE)


class UserIdDecision(NamedTuple):
    """What became of a user id, and why (a log field and a metric label)."""

    user_id: str | None
    action: UserIdAction


def looks_like_pii(value: str) -> PiiKind | None:
    """``email`` when an address appears anywhere in ``value`` (also percent-encoded),
    ``phone`` when the whole value is shaped like a phone number, else None.

    Phone shapes: ``+`` and 8-15 digits; ``00``, a country code and 10-17 digits; 9-15
    digits written with separators (``(555) 123-4567``, ``06 12 34 56 78``); or a national
    number, ``0`` then a non-zero digit, 10-12 digits in all. Bare digit runs without
    those marks are numeric ids, and dotted quads are IP addresses, not phones.
    """
    if _EMAIL.search(value) or _EMAIL.search(unquote(value)):
        return "email"
    text = _TEL_SCHEME.sub("", value.strip(), count=1)
    if not _PHONE_CHARS.fullmatch(text) or _is_ip(text):
        return None
    digits = sum(char.isdigit() for char in text)
    if text.startswith("+"):
        shaped = 8 <= digits <= 15
    elif _INTERNATIONAL_PREFIX.match(text):
        shaped = 10 <= digits <= 17
    elif _SEPARATOR.search(text):
        shaped = 9 <= digits <= 15
    else:
        shaped = _NATIONAL.fullmatch(text) is not None
    return "phone" if shaped else None


def pseudonymize(value: str, secret: str | bytes) -> str:
    """``h_`` + HMAC-SHA256 hex of ``value``: deterministic per secret, never the input.
    Raises ``SettingsError`` for a secret shorter than 16 bytes."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        raise SettingsError(f"PII_HASH_SECRET must be at least {MIN_SECRET_BYTES} bytes")
    return PSEUDONYM_PREFIX + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def normalize_pii(value: str, kind: PiiKind) -> str:
    """The form hashed for ``kind``: a trimmed lowercase email, or ``+`` and digits."""
    if kind == "email":
        return value.strip().lower()
    digits = "".join(char for char in value if char.isdigit())
    return f"+{digits}" if value.strip().startswith("+") else digits


def apply_user_id_policy(
    user_id: str | None, mode: str, secret: str | bytes | None
) -> UserIdDecision:
    """The user id to store and forward: unchanged unless it looks like PII, then its
    pseudonym (``hash``) or None (``drop``, or ``hash`` without a secret)."""
    _require_mode(mode)
    if user_id is None:
        return UserIdDecision(None, "kept")
    kind = looks_like_pii(user_id)
    if kind is None:
        return UserIdDecision(user_id, "kept")
    if mode == "drop":
        return UserIdDecision(None, "dropped")
    if not secret:
        return UserIdDecision(None, "dropped_no_secret")
    return UserIdDecision(pseudonymize(normalize_pii(user_id, kind), secret), "hashed")


def scrub_parameters(
    event: Mapping[str, object],
    names: Collection[str],
    mode: str,
    secret: str | bytes | None,
) -> dict[str, object]:
    """A copy of ``event`` where every parameter named in ``names``, at any depth (items,
    nested objects), is pseudonymized (``hash``) or removed (``drop``, or ``hash`` without
    a secret), and ``user_data`` becomes GA4's user-provided data (raw values normalised
    and SHA-256 hashed). The input is not changed."""
    _require_mode(mode)
    hashing_secret = secret if mode == "hash" and secret else None
    scrubbed = _scrub(event, frozenset(names), hashing_secret)
    user_data = normalized_user_data(scrubbed.pop(USER_DATA_FIELD, None))
    if user_data:
        scrubbed[USER_DATA_FIELD] = user_data
    return scrubbed


def truncate_ip(ip: str) -> str | None:
    """The network part of ``ip``: IPv4 (or IPv4-mapped IPv6) to /24, IPv6 to /48;
    None when ``ip`` is not an address."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def apply_ip_policy(ip: str | None, mode: str) -> str | None:
    """The ``ip_override`` to forward: as received (``pass``), truncated, or None."""
    if mode not in {"pass", "truncate", "drop"}:
        raise ValueError(f"unknown IP mode {mode!r}")
    if ip is None or mode == "drop":
        return None
    return ip if mode == "pass" else truncate_ip(ip)


def _require_mode(mode: str) -> None:
    if mode not in {"hash", "drop"}:
        raise ValueError(f"unknown PII mode {mode!r}")


def _scrub(
    value: Mapping[str, object], names: frozenset[str], secret: str | bytes | None
) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, item in value.items():
        if key in names:
            if secret is not None and item is not None:
                result[key] = pseudonymize(_as_text(item), secret)
        else:
            result[key] = _scrub_any(item, names, secret)
    return result


def _scrub_any(value: object, names: frozenset[str], secret: str | bytes | None) -> object:
    if isinstance(value, Mapping):
        return _scrub(value, names, secret)
    if isinstance(value, list):
        return [_scrub_any(item, names, secret) for item in value]
    return value


def _as_text(value: object) -> str:
    if isinstance(value, str):
        kind = looks_like_pii(value)
        return normalize_pii(value, kind) if kind else value
    return str(value)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PrivacyRules:
    """The deployment's PII rules (``PII_USER_ID_MODE``, ``PII_HASH_SECRET``,
    ``PII_PARAMETERS``, ``IP_MODE``): the one definition every function applies."""

    user_id_mode: str = "hash"
    hash_secret: str | None = field(default=None, repr=False)
    parameters: tuple[str, ...] = ()
    ip_mode: str = "pass"


def protect(event: RawEvent, rules: PrivacyRules) -> tuple[RawEvent, UserIdDecision]:
    """The event with no raw PII: a PII-looking user id pseudonymized or dropped, the
    configured parameters scrubbed, ``user_data`` reduced to hashes."""
    decision = apply_user_id_policy(event.user_id, rules.user_id_mode, rules.hash_secret)
    payload = (
        scrub_parameters(event.payload, rules.parameters, rules.user_id_mode, rules.hash_secret)
        if rules.parameters or USER_DATA_FIELD in event.payload
        else dict(event.payload)
    )
    if decision.action != "kept":
        payload.pop("user_id", None)
        if decision.user_id is not None:
            payload["user_id"] = decision.user_id
    return replace(event, user_id=decision.user_id, payload=payload), decision
