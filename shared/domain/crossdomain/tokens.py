"""Signed cross-domain link tokens: proof that two browsers' clients are one visitor.

The first domain's server (or page, through the ``mint_link_token`` endpoint) mints a
token for its client id and appends it to the cross-domain URL or form redirect; an event
on the second domain carries it back, and the resolver aliases the second client to the
first. Only a token that is well formed, authentic and unexpired links anything.

Token layout (every part URL-safe, ``.``-separated, so it needs no percent-encoding)::

    1.<client id, base64url>.<expiry, Unix seconds>.<nonce>.<tag, base64url>

- the client id is base64url-encoded because server-managed ids contain ``/``, ``+``
  and ``=``; the tag is the first 16 bytes of HMAC-SHA256 over the four parts before it,
  exactly as they appear in the token, so any re-encoding of a part breaks the tag;
- the tag is compared in constant time against its canonical encoding, so a token is
  accepted in one spelling only;
- ``token_id`` is derived from the signed text (never from the raw token), and single
  use is the caller's job: create ``link_tokens/{token_id}`` if absent, with
  ``expire_at`` at the token's expiry; a token whose marker already exists is a replay;
- ``now_seconds`` is the caller's processing time (for example the Pub/Sub publish
  time), not the event's claimed time, which the browser controls.

Nothing here reads a clock, the environment or the network; ``new_nonce`` is the one
function that draws randomness.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from shared.domain.urls import url_parameter
from shared.errors import SettingsError

__all__ = [
    "LINK_TOKEN_FIELD",
    "REPLAYED",
    "check_link_token",
    "extract_link_token",
    "mint_link_token",
    "new_nonce",
]


VERSION: Final = "1"
MIN_SECRET_BYTES: Final = 16
TAG_BYTES: Final = 16
"""128 bits of HMAC-SHA256: far beyond guessing within a token's minutes of life."""
MAX_TTL_SECONDS: Final = 86_400
MAX_CLIENT_ID_CHARS: Final = 256
LINK_TOKEN_FIELD: Final = "link_token"  # noqa: S105 - a field name, not a credential
"""Event field that may carry a token, beside the configured query parameter name."""
REPLAYED: Final = "replayed"
"""The reason a caller logs and counts when a token's marker already exists."""

LinkTokenFailure = Literal["malformed", "forged", "expired"]

_NONCE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_EXPIRY = re.compile(r"[1-9][0-9]{0,11}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN_MAX_CHARS: Final = 600


@dataclass(frozen=True)
class LinkTokenCheck:
    """The verdict on one token. Invariant: ``ok`` iff ``failure`` is None, and then
    ``client_id``, ``token_id`` and ``expires_at_seconds`` are all set."""

    client_id: str | None = None
    token_id: str | None = None
    expires_at_seconds: int | None = None
    failure: LinkTokenFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def new_nonce() -> str:
    """A fresh random nonce (16 bytes, base64url): makes every minted token unique."""
    return secrets.token_urlsafe(16)


def mint_link_token(
    client_id: str,
    secret: str | bytes,
    now_seconds: float,
    ttl_seconds: int,
    nonce: str,
) -> str:
    """A token for ``client_id`` valid until ``now_seconds + ttl_seconds``.

    Raises ``SettingsError`` for a secret shorter than 16 bytes and ``ValueError`` for an
    empty or oversized client id, a TTL outside 1..86400 s, or a nonce that is not 8-64
    base64url characters.
    """
    key = _key(secret)
    if not client_id or len(client_id) > MAX_CLIENT_ID_CHARS:
        raise ValueError(f"client id must be 1-{MAX_CLIENT_ID_CHARS} characters")
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}")
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 8-64 base64url characters")
    expiry = int(now_seconds) + ttl_seconds
    signed = ".".join((VERSION, _b64encode(client_id.encode("utf-8")), str(expiry), nonce))
    return f"{signed}.{_b64encode(_tag(key, signed))}"


def check_link_token(token: str, secret: str | bytes, now_seconds: float) -> LinkTokenCheck:
    """Whether ``token`` is well formed, signed with ``secret`` and unexpired at
    ``now_seconds``; checked in that order, so an expired verdict implies authenticity."""
    key = _key(secret)
    parts = token.split(".") if len(token) <= _TOKEN_MAX_CHARS else []
    if len(parts) != 5 or not _well_formed(parts):
        return LinkTokenCheck(failure="malformed")
    version, encoded_client, expiry_text, nonce, encoded_tag = parts
    signed = ".".join((version, encoded_client, expiry_text, nonce))
    if not hmac.compare_digest(_b64encode(_tag(key, signed)), encoded_tag):
        return LinkTokenCheck(failure="forged")
    expiry = int(expiry_text)
    if now_seconds >= expiry:
        return LinkTokenCheck(failure="expired")
    client_id = _b64decode(encoded_client).decode("utf-8")
    token_id = hashlib.sha256(signed.encode("ascii")).hexdigest()[:32]
    return LinkTokenCheck(client_id=client_id, token_id=token_id, expires_at_seconds=expiry)


def extract_link_token(
    page_location: str | None,
    parameter: str,
    event_fields: Mapping[str, object] | None = None,
) -> str | None:
    """The token an event carries: an event field (``parameter`` or ``link_token``)
    first, as the page set it on purpose; else the URL's query, then its fragment."""
    for name in (parameter, LINK_TOKEN_FIELD):
        value = (event_fields or {}).get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    value = url_parameter(page_location, parameter)
    return value.strip() if value else None


def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        raise SettingsError(f"LINK_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes")
    return key


def _tag(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()[:TAG_BYTES]


def _well_formed(parts: list[str]) -> bool:
    version, encoded_client, expiry_text, nonce, encoded_tag = parts
    if version != VERSION or not _EXPIRY.fullmatch(expiry_text) or not _NONCE.fullmatch(nonce):
        return False
    if not _B64URL.fullmatch(encoded_client) or not _B64URL.fullmatch(encoded_tag):
        return False
    try:
        client_id = _b64decode(encoded_client).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return 0 < len(client_id) <= MAX_CLIENT_ID_CHARS


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
