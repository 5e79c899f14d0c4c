"""GA4's own cross-domain linker parameter, ``_gl``: read, check and (for tests) write.

When a visitor follows a decorated link, gtag.js appends ``_gl`` to the destination URL::

    _gl=1*<checksum>*_ga*<base64 client id>*_ga_<STREAM>*<base64 session cookie>*...

Other keys (``_gcl_aw``, ``_gcl_au``, ``_up``, ``_fplc``...) may ride along; they count
in the checksum like any other pair. Values use gtag's web-safe base64 (``-``, ``_``)
with ``.`` as padding.

The checksum, the algorithm as implemented by ampproject/amphtml
(``extensions/amp-analytics/0.1/linker.js`` and ``crc32.js``, whose test vectors
``test/test-linker.js`` pins; gtag.js's minified reader computes the same)::

    base36(CRC32(user_agent * timezone_offset * language * minute * serialized_pairs))

with ``*`` joining the parts, ``timezone_offset`` as JavaScript's
``Date.getTimezoneOffset()`` (minutes, UTC minus local), ``language`` as
``navigator.language``, ``minute`` as ``floor(unix_ms / 60000)`` and the pairs exactly as
they appear in the URL. CRC32 is the standard (zlib) polynomial over the low byte of each
UTF-16 code unit, as gtag.js feeds ``charCodeAt``; for ASCII that is plain CRC32.

Invariants:
- A value is accepted only when its checksum matches for the event's own user agent at
  the event's minute or up to ``max_age_minutes`` before it (default 1: the current and
  the previous minute, as AMP's reader accepts; gtag.js builds seen in the wild accept two
  minutes back).
- The server never learns the browser's timezone offset, and GTM SC lowercases the
  language; so, unless told, the check tries every real-world offset and the usual
  spellings of the language. That is at most 240 CRCs per check, and leaves a forged
  checksum a chance of about 6 in 10**8.
- The checksum is not a secret nor a signature: anyone can build a valid ``_gl`` for any
  client id. It proves freshness and same-browser, not authenticity; signed link tokens
  (``shared.domain.crossdomain.tokens``) are the authenticated path.
- Pass the event's own time: the browser stamped the checksum with its own clock.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import unquote

from shared.domain.urls import url_parameter

__all__ = [
    "CLIENT_ID_KEY",
    "TIMEZONE_OFFSETS",
    "build_linker_param",
    "check_linker_param",
    "encode_linker",
    "extract_linker_param",
    "language_spellings",
    "linker_checksum",
    "normalize_linker_client_id",
    "parse_linker_param",
]


LINKER_PARAMETER: Final = "_gl"
LINKER_VERSION: Final = "1"
CLIENT_ID_KEY: Final = "_ga"
SESSION_KEY_PREFIX: Final = "_ga_"
DEFAULT_MAX_AGE_MINUTES: Final = 1

TIMEZONE_OFFSETS: Final = tuple(
    -utc_offset
    for utc_offset in (
        -720, -660, -600, -570, -540, -480, -420, -360, -300, -240, -210, -180, -150, -120,
        -60, 0, 60, 120, 180, 210, 240, 270, 300, 330, 345, 360, 390, 420, 480, 525, 540,
        570, 600, 630, 660, 720, 765, 780, 825, 840,
    )
)  # fmt: skip
"""Every UTC offset in use (standard and daylight time, minutes), negated as JavaScript's
``getTimezoneOffset()`` reports it."""

LinkerFailure = Literal["malformed", "checksum_mismatch", "no_client_id"]

_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*[.=]{0,2}")
_CHECKSUM = re.compile(r"[0-9a-z]{1,7}")
_CLIENT_ID = re.compile(r"(?:GA\d\.\d+\.)?([1-9]\d{0,19}\.[1-9]\d{0,19})")
_COOKIE_PREFIX = re.compile(r"GS\d\.\d+\.")
_STREAM = re.compile(r"[A-Z0-9]{4,20}")
_DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_MAX_VALUE_CHARS: Final = 2000


@dataclass(frozen=True)
class LinkerSession:
    """The GA4 session cookie of one stream, as carried in ``_ga_<STREAM>``."""

    stream_id: str
    """The measurement id, ``G-`` + the key's suffix."""
    session_id: int
    session_number: int | None


@dataclass(frozen=True)
class LinkerParam:
    """A structurally valid ``_gl`` value, checksum not yet checked."""

    checksum: str
    serialized: str
    """The pairs exactly as received: the checksum covers this text."""
    values: Mapping[str, str] = field(default_factory=dict)
    """Decoded values by key; a pair whose value is not base64 is left out."""


@dataclass(frozen=True)
class LinkerCheck:
    """The verdict on one ``_gl`` value. Invariant: ``ok`` iff ``failure`` is None, and
    then ``client_id`` is a bare ``X.Y`` GA client id."""

    client_id: str | None = None
    sessions: tuple[LinkerSession, ...] = ()
    minutes_old: int | None = None
    timezone_offset_minutes: int | None = None
    failure: LinkerFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def session_for(self, measurement_id: str) -> LinkerSession | None:
        """The carried session of ``measurement_id``'s stream, if the link holds one."""
        return next((s for s in self.sessions if s.stream_id == measurement_id), None)


def extract_linker_param(page_location: str | None) -> str | None:
    """The ``_gl`` value of a URL's query, else its fragment, percent-decoded until it
    reads as a linker value (gtag.js decodes up to three times)."""
    value = url_parameter(page_location, LINKER_PARAMETER)
    return _unquoted(value) if value else None


def _unquoted(value: str) -> str:
    for _ in range(2):
        if "*" in value:
            break
        value = unquote(value)
    return value


def parse_linker_param(value: str) -> LinkerParam | None:
    """The checksum and pairs of a ``_gl`` value, or None when it is not one."""
    parts = value.split("*") if len(value) <= _MAX_VALUE_CHARS else []
    if len(parts) < 4 or len(parts) % 2 or parts[0] != LINKER_VERSION:
        return None
    checksum, pairs = parts[1], parts[2:]
    if not _CHECKSUM.fullmatch(checksum):
        return None
    values: dict[str, str] = {}
    for key, encoded in zip(pairs[::2], pairs[1::2], strict=True):
        decoded = _decode(encoded)
        if _KEY.fullmatch(key) and decoded is not None:
            values.setdefault(key, decoded)
    return LinkerParam(checksum=checksum, serialized="*".join(pairs), values=values)


def linker_checksum(
    serialized: str, user_agent: str, minute: int, language: str, timezone_offset_minutes: int
) -> str:
    """gtag.js's checksum of ``serialized`` pairs for one browser and one minute."""
    text = "*".join((user_agent, str(timezone_offset_minutes), language, str(minute), serialized))
    return _base36(zlib.crc32(text.encode("utf-16-le", "surrogatepass")[::2]))


def build_linker_param(
    values: Mapping[str, str],
    user_agent: str,
    now_minute: int,
    *,
    language: str = "",
    timezone_offset_minutes: int = 0,
) -> str:
    """A ``_gl`` value carrying ``values`` (plain text, encoded here) as a browser with
    this user agent, language and timezone would build it in minute ``now_minute``."""
    if not values:
        raise ValueError("a linker value needs at least one pair")
    bad = [key for key in values if not _KEY.fullmatch(key)]
    if bad:
        raise ValueError(f"invalid linker keys: {bad}")
    serialized = "*".join(f"{key}*{_encode(value)}" for key, value in values.items())
    checksum = linker_checksum(
        serialized, user_agent, now_minute, language, timezone_offset_minutes
    )
    return f"{LINKER_VERSION}*{checksum}*{serialized}"


def check_linker_param(
    value: str,
    user_agent: str,
    now_seconds: float,
    *,
    language: str | None = None,
    timezone_offset_minutes: int | None = None,
    max_age_minutes: int = DEFAULT_MAX_AGE_MINUTES,
) -> LinkerCheck:
    """Whether ``value`` was built by this browser within the last ``max_age_minutes``
    before ``now_seconds`` (the event's time), and the client id and sessions it carries.

    ``language`` is the event's (any case); ``timezone_offset_minutes`` narrows the search
    when the page reported it. Order: structure, checksum, then the client id.
    """
    parsed = parse_linker_param(value)
    if parsed is None:
        return LinkerCheck(failure="malformed")
    minute = int(now_seconds // 60)
    match = _matching_fingerprint(
        parsed,
        user_agent,
        minute,
        language=language,
        timezone_offset_minutes=timezone_offset_minutes,
        max_age_minutes=max_age_minutes,
    )
    if match is None:
        return LinkerCheck(failure="checksum_mismatch")
    client_id = normalize_linker_client_id(parsed.values.get(CLIENT_ID_KEY, ""))
    if client_id is None:
        return LinkerCheck(failure="no_client_id")
    return LinkerCheck(
        client_id=client_id,
        sessions=tuple(_sessions(parsed.values)),
        minutes_old=match[0],
        timezone_offset_minutes=match[1],
    )


def encode_linker(
    client_id: str,
    user_agent: str,
    now_seconds: float,
    *,
    language: str = "",
    timezone_offset_minutes: int = 0,
    measurement_id: str | None = None,
    session_id: int | None = None,
    session_number: int = 1,
) -> str:
    """The full ``_gl`` value gtag.js would append for ``client_id`` (bare or ``GA1.1.``
    form) at ``now_seconds``, with the stream's session cookie when both
    ``measurement_id`` and ``session_id`` are given."""
    bare = normalize_linker_client_id(client_id)
    if bare is None:
        raise ValueError(f"not a GA client id: {client_id!r}")
    values = {CLIENT_ID_KEY: bare}
    if measurement_id is not None and session_id is not None:
        stream = measurement_id.removeprefix("G-")
        if not _STREAM.fullmatch(stream):
            raise ValueError(f"not a GA4 measurement id: {measurement_id!r}")
        last_hit = int(now_seconds)
        values[SESSION_KEY_PREFIX + stream] = f"{session_id}.{session_number}.1.{last_hit}.0.0.0"
    return build_linker_param(
        values,
        user_agent,
        int(now_seconds // 60),
        language=language,
        timezone_offset_minutes=timezone_offset_minutes,
    )


def normalize_linker_client_id(value: str) -> str | None:
    """``X.Y`` from ``X.Y`` or a ``GA1.1.X.Y`` cookie value; None for anything else."""
    match = _CLIENT_ID.fullmatch(value.strip())
    return match.group(1) if match else None


def language_spellings(language: str | None) -> tuple[str, ...]:
    """The spellings ``navigator.language`` may have had, given the event's language:
    as received, lowercase, and BCP 47 case (``en-GB``, ``zh-Hant-TW``)."""
    if language is None:
        return ("",)
    subtags = language.strip().split("-")
    canonical = [subtags[0].lower()] + [
        tag.upper() if len(tag) == 2 else tag.title() if len(tag) == 4 else tag.lower()
        for tag in subtags[1:]
    ]
    spellings = (language, language.lower(), "-".join(canonical))
    return tuple(dict.fromkeys(spellings))


def _matching_fingerprint(
    parsed: LinkerParam,
    user_agent: str,
    minute: int,
    *,
    language: str | None,
    timezone_offset_minutes: int | None,
    max_age_minutes: int,
) -> tuple[int, int] | None:
    offsets = TIMEZONE_OFFSETS if timezone_offset_minutes is None else (timezone_offset_minutes,)
    for age in range(max(0, max_age_minutes) + 1):
        for offset in offsets:
            for spelling in language_spellings(language):
                expected = linker_checksum(
                    parsed.serialized, user_agent, minute - age, spelling, offset
                )
                if expected == parsed.checksum:
                    return age, offset
    return None


def _sessions(values: Mapping[str, str]) -> Iterable[LinkerSession]:
    for key, value in values.items():
        stream = key.removeprefix(SESSION_KEY_PREFIX)
        if key.startswith(SESSION_KEY_PREFIX) and _STREAM.fullmatch(stream):
            parsed = _session_cookie(value)
            if parsed is not None:
                yield LinkerSession(f"G-{stream}", parsed[0], parsed[1])


def _session_cookie(value: str) -> tuple[int, int | None] | None:
    """Session id and number from a GS1 (``1763800154.12.1...``) or GS2
    (``s1763800154$o12$g1...``) session cookie value, with or without its prefix."""
    body = _COOKIE_PREFIX.sub("", value.strip(), count=1)
    if "$" in body:
        fields = {item[:1]: item[1:] for item in body.split("$") if item}
        session, number = fields.get("s", ""), fields.get("o", "")
    else:
        session, _, rest = body.partition(".")
        number = rest.partition(".")[0]
    if not session.isdigit() or int(session) <= 0:
        return None
    return int(session), int(number) if number.isdigit() and int(number) > 0 else None


def _encode(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii").replace("=", ".")


def _decode(encoded: str) -> str | None:
    if not encoded or not _BASE64.fullmatch(encoded):
        return None
    text = encoded.rstrip(".=").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _base36(number: int) -> str:
    digits = ""
    while number:
        number, remainder = divmod(number, 36)
        digits = _DIGITS36[remainder] + digits
    return digits or "0"
