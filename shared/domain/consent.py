"""Consent Mode strings (``x-ga-gcs``, ``x-ga-gcd``) and the Measurement Protocol consent block.

sGTM's GA4 client copies the page's Consent Mode state into event data as ``x-ga-gcs``
and ``x-ga-gcd``; the Measurement Protocol (MP) takes consent only as a request-level
``consent`` object with ``ad_user_data`` and ``ad_personalization``
(https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference).
This module turns the strings into :class:`ConsentSignals` and those into that block.

Rules:

- ``x-ga-gcs`` is ``G1`` + ad_storage digit + analytics_storage digit, ``1`` granted and
  ``0`` denied: ``G100``, ``G101``, ``G110``, ``G111``. It says nothing about
  ad_user_data or ad_personalization.
- ``x-ga-gcd`` is undocumented by Google. Its decoding follows Analytics Debugger's
  parser (https://github.com/analytics-debugger/gtm-template-server-side-google-consent-parser):
  character 0 is a version; then four two-character blocks for ad_storage,
  analytics_storage, ad_user_data and ad_personalization whose second characters sit at
  positions 2, 4, 6 and 8; then a Global Privacy Control marker and optional blocks, which
  are ignored here. Each of those letters is a base64url digit (``A``-``Z`` 0-25, ``a``-``z``
  26-51, ``0``-``9`` 52-61, ``-`` 62, ``_`` 63) whose low four bits hold two 2-bit states,
  ``default = (v >> 2) & 3`` and ``update = v & 3``: 3 granted, 2 denied, anything else
  not set. The effective state is the update if set, else the default, else unknown.
  Letters: ``l`` nothing set, ``p`` denied, ``q`` denied then denied, ``r`` denied then
  granted, ``t`` granted, ``u`` granted then denied, ``v`` granted then granted, ``m`` no
  default then denied, ``n`` no default then granted.
- Analytics Debugger's template orders its alphabet digits-first
  (``0-9a-zA-Z-_``). Lower-case letters, the only ones seen in real ``gcd`` strings, sit
  exactly 16 apart in both orders, so their low four bits (all that is read) agree; an
  upper-case letter or a digit would decode differently, and this module follows the
  standard base64url order for them.
- MP's ``ad_personalization`` is ``DENIED`` whenever the request asks for
  non-personalised ads: ``x-ga-npa`` of ``"1"``/``1``/``True``, or the internal user
  property ``_npa`` of ``"1"`` (flat, as in ``x-ga-mp2-user_properties``, or MP-shaped).
  Such a request states a denial even when no consent string said anything.

Invariants:

- Every decoder takes ``object`` and never raises; anything that is not a well-formed
  string (wrong type, too short, a character outside the alphabet) decodes to
  "not stated" (``None``) rather than to a guess, because a guessed grant is a privacy
  fault and a guessed denial silently loses conversions.
- A signal that is not stated is left out of the MP block rather than invented: what GA4
  assumes for a missing signal is GA4's rule to apply, not this pipeline's to guess.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final, Literal

__all__ = [
    "ConsentSignals",
    "decode_gcd",
    "decode_gcs",
    "gcd_letter_states",
    "merge",
    "mp_consent",
]

MpConsentValue = Literal["GRANTED", "DENIED"]

_GCS: Final = re.compile(r"G1([01])([01])")
_BASE64URL: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_GCD_SHAPE: Final = re.compile(r"[0-9](?:[A-Za-z0-9_-]{2}){4}")
_GCD_LETTER_POSITIONS: Final = (2, 4, 6, 8)
_GRANTED: Final = 3
_DENIED: Final = 2
_NPA_PROPERTY: Final = "_npa"


@dataclass(frozen=True)
class ConsentSignals:
    """The four Consent Mode v2 signals; ``None`` means the source did not state it."""

    ad_storage: bool | None = None
    analytics_storage: bool | None = None
    ad_user_data: bool | None = None
    ad_personalization: bool | None = None


def decode_gcs(value: object) -> ConsentSignals:
    """Storage consent from ``x-ga-gcs``; anything but ``G1`` + two binary digits is unknown."""
    if not isinstance(value, str):
        return ConsentSignals()
    match = _GCS.fullmatch(value.strip())
    if match is None:
        return ConsentSignals()
    return ConsentSignals(ad_storage=match.group(1) == "1", analytics_storage=match.group(2) == "1")


def gcd_letter_states(letter: str) -> tuple[bool | None, bool | None]:
    """The (default, update) states one ``gcd`` letter carries; (None, None) if not a letter."""
    if len(letter) != 1 or letter not in _BASE64URL:
        return None, None
    value = _BASE64URL.index(letter)
    return _state((value >> 2) & 3), _state(value & 3)


def decode_gcd(value: object) -> ConsentSignals:
    """All four signals from ``x-ga-gcd``; a string without the documented shape is unknown.
    A site sends a handful of distinct strings, so decoded ones are remembered."""
    return _decode_gcd_text(value) if isinstance(value, str) else ConsentSignals()


@functools.lru_cache(maxsize=1024)
def _decode_gcd_text(value: str) -> ConsentSignals:
    if _GCD_SHAPE.match(value.strip()) is None:
        return ConsentSignals()
    text = value.strip()
    states = [_effective(*gcd_letter_states(text[i])) for i in _GCD_LETTER_POSITIONS]
    return ConsentSignals(*states)


def merge(*signals: ConsentSignals) -> ConsentSignals:
    """Per signal, the first stated value; callers pass the most authoritative source first."""
    merged: dict[str, bool | None] = {}
    for field in fields(ConsentSignals):
        stated = (getattr(s, field.name) for s in signals)
        merged[field.name] = next((v for v in stated if v is not None), None)
    return ConsentSignals(**merged)


def mp_consent(
    signals: ConsentSignals,
    *,
    npa: object = None,
    user_properties: Mapping[str, object] | None = None,
) -> dict[str, MpConsentValue]:
    """MP's request-level ``consent`` block; signals not stated are left out."""
    block: dict[str, MpConsentValue] = {}
    if signals.ad_user_data is not None:
        block["ad_user_data"] = _mp_value(signals.ad_user_data)
    personalization = signals.ad_personalization
    if _npa_on(npa) or _npa_on(_npa_property(user_properties)):
        personalization = False
    if personalization is not None:
        block["ad_personalization"] = _mp_value(personalization)
    return block


def _state(bits: int) -> bool | None:
    """One 2-bit state: granted, denied, or not set."""
    if bits == _GRANTED:
        return True
    if bits == _DENIED:
        return False
    return None


def _effective(default: bool | None, update: bool | None) -> bool | None:
    """An update overrides the default, which is all there is without one."""
    return update if update is not None else default


def _mp_value(granted: bool) -> MpConsentValue:
    """MP's spelling of a consent state."""
    return "GRANTED" if granted else "DENIED"


def _npa_on(value: object) -> bool:
    """Whether a value asks for non-personalised ads (strings, numbers and booleans alike)."""
    if isinstance(value, str):
        return value.strip() == "1"
    if isinstance(value, bool):
        return value
    return isinstance(value, int | float) and value == 1


def _npa_property(user_properties: Mapping[str, object] | None) -> object:
    """``_npa`` from flat or MP-shaped (``{"value": v}``) user properties."""
    if not isinstance(user_properties, Mapping):
        return None
    value = user_properties.get(_NPA_PROPERTY)
    if isinstance(value, Mapping):
        return value.get("value")
    return value
