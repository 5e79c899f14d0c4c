"""The Measurement Protocol ``device`` object, built from client hints and the user agent.

GA4 reads either a ``device`` object or a raw ``user_agent`` from an MP request, and
ignores ``user_agent`` whenever ``device`` is present. A ``device`` object is therefore
only worth sending when it says at least as much as the user agent would have said:

- ``describe_device`` returns a full ``device`` dict when the hints and the parsed user
  agent together give a category, a browser and an operating system; otherwise it returns
  the raw user agent alone so GA4 parses it itself; both are ``None`` when nothing is
  known. Never both are set.
- Bots and headless browsers always go out as their raw user agent, so GA4's own
  known-bot exclusion still sees them.
- Client hints beat the user agent for the OS version, the model (and the brand implied
  by it) and the browser version, because Chrome's UA reduction freezes those in the
  string (``Windows NT 10.0`` on Windows 11, ``Android 10; K`` on every Android). They
  only do so when they agree with the user agent on the OS (or browser), so a spoofed or
  stale hint cannot relabel a device.
- Values use GA4's report vocabulary (``Macintosh``, ``Chrome OS``, ``Safari (in-app)``,
  ``Android Webview``, ``smart tv``...). Where the hardware is unknown (a Windows PC),
  brand and model stay unset rather than invented.
- OS versions are given as the user agent states them (``17.5.1``, ``10.15.7``); hint
  versions, which are always padded to three parts, lose trailing zero parts
  (``14.0.0`` -> ``14``); Windows hints map to ``7``/``8``/``8.1``/``10``/``11``.
- Nothing here raises, whatever the input: wrong types and garbage read as unknown.

Parser choice: ``ua-parser`` 1.x with the ``ua-parser-builtins`` rules (uap-core, kept
current by its maintainers) and the ``ua-parser-rs`` accelerator. Measured on this
project's 2-core machine: ~15 µs per uncached ua-parser call (~23 µs for a whole verdict
here, ~0.15 µs cached), ~35 ms to import it plus ~120 ms to build the matchers once, on
the first parse rather than at import. Matomo's
``device-detector`` port names TV/tablet categories itself but took ~14 ms per uncached
parse (1000x slower) and ~2 s for its first parse, too slow for a request path; the
category it would add is derived here from the parsed OS and device and a few TV tokens.
Without the accelerator the same rules run in pure Python (~0.7 ms a parse).

Verdicts are cached per user agent (bounded LRU), so a repeated agent costs a dict
lookup; agents are cut to ``MAX_USER_AGENT_LENGTH`` characters before parsing or caching,
which bounds both the parse time and the cache's memory.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ua_parser import OS, Device, Parser, UserAgent

__all__ = [
    "MAX_USER_AGENT_LENGTH",
    "DeviceChoice",
    "DeviceInfo",
    "describe_device",
    "parse_user_agent",
]

MAX_USER_AGENT_LENGTH: Final = 512
_CACHE_SIZE: Final = 4096
_MAX_HINT_LENGTH: Final = 64

_DESKTOP_OS: Final = frozenset({"Windows", "Macintosh", "Linux", "Chrome OS"})
_HANDHELD_OS: Final = frozenset({"iOS", "Android"})

# ua-parser OS families in GA4's spelling; the flag says whether the parsed version is one.
_OS_NAMES: Final[Mapping[str, tuple[str, bool]]] = {
    "Windows": ("Windows", True),
    "Mac OS X": ("Macintosh", True),
    "iOS": ("iOS", True),
    "Android": ("Android", True),
    "Chromecast Android": ("Android", True),
    "Chrome OS": ("Chrome OS", True),
    "Linux": ("Linux", False),
    "Ubuntu": ("Linux", False),
    "Fedora": ("Linux", False),
    "Debian": ("Linux", False),
    "Arch Linux": ("Linux", False),
    "Chromecast Linux": ("Linux", False),
    "Tizen": ("Tizen", True),
    "Web0S": ("webOS", True),
    "webOS": ("webOS", True),
    "Chromecast Fuchsia": ("Fuchsia", False),
    "Fuchsia": ("Fuchsia", True),
}

_BROWSER_NAMES: Final[Mapping[str, str]] = {
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "HeadlessChrome": "Chrome",
    "Chrome Mobile WebView": "Android Webview",
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari (in-app)",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
}

# Apps whose embedded web view ua-parser names after the app; GA4 names the web view.
_IN_APP_FAMILIES: Final = frozenset(
    {"Facebook", "Instagram", "LinkedIn", "Pinterest", "Snapchat", "Twitter", "TikTok"}
)

# Client-hint brand names in GA4's spelling.
_HINT_BROWSERS: Final[Mapping[str, str]] = {
    "Google Chrome": "Chrome",
    "Microsoft Edge": "Edge",
    "Opera GX": "Opera",
    "Android WebView": "Android Webview",
    "HeadlessChrome": "Chrome",
}

_HINT_PLATFORMS: Final[Mapping[str, str]] = {
    "windows": "Windows",
    "macos": "Macintosh",
    "android": "Android",
    "chrome os": "Chrome OS",
    "chromeos": "Chrome OS",
    "chromium os": "Chrome OS",
    "linux": "Linux",
    "ios": "iOS",
    "fuchsia": "Fuchsia",
}

_BRAND_NAMES: Final[Mapping[str, str | None]] = {
    "XiaoMi": "Xiaomi",
    "Generic": None,
    "Generic_Android": None,
    "Generic_Android_Tablet": None,
    "Generic_Inettv": None,
    "Spider": None,
}

# Tokens that stand where a model would be: reduced-UA `K`, generic families, TV platforms.
_PLACEHOLDER_MODELS: Final = frozenset(
    {"K", "Smartphone", "Tablet", "Desktop", "SMART-TV", "Web0S SmartTV", "AndroidTV"}
)

_TV_TOKENS: Final = (
    "smart-tv",
    "smarttv",
    "web0s",
    "netcast",
    "crkey",
    "androidtv",
    "android tv",
    "googletv",
    "google tv",
    "bravia",
    "hbbtv",
    "appletv",
)
_TABLET_FAMILIES: Final = frozenset({"iPad", "Kindle", "Generic Tablet"})

_LANGUAGE: Final = re.compile(
    r"(?P<lang>[a-z]{2,3})(?:[-_](?P<script>[a-z]{4}))?(?:[-_](?P<region>[a-z]{2}|\d{3}))?",
    re.IGNORECASE | re.ASCII,
)
_RESOLUTION: Final = re.compile(r"[1-9]\d{0,4}x[1-9]\d{0,4}", re.ASCII)
_HEADER_BRAND: Final = re.compile(r'"([^"]*)"\s*;\s*v\s*=\s*"([^"]*)"')


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What one user agent (optionally with its client hints) says about the device.

    Every field is in GA4's vocabulary or ``None`` when unknown; ``is_bot`` marks crawlers
    and headless browsers, whose other fields describe only what they claim to be.
    """

    category: str | None = None
    brand: str | None = None
    model: str | None = None
    operating_system: str | None = None
    operating_system_version: str | None = None
    browser: str | None = None
    browser_version: str | None = None
    is_bot: bool = False


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    """What the MP body should carry: at most one of ``device`` and ``user_agent`` is set.

    ``device`` always holds ``category``, ``browser`` and ``operating_system`` when set.
    """

    device: dict[str, str] | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class _Hints:
    """The client hints that were readable, in GA4's vocabulary."""

    operating_system: str | None = None
    operating_system_version: str | None = None
    model: str | None = None
    browser: str | None = None
    browser_version: str | None = None
    mobile: bool | None = None
    headless: bool = False


_UNKNOWN: Final = DeviceInfo()
_NO_HINTS: Final = _Hints()


def parse_user_agent(user_agent: str | None) -> DeviceInfo:
    """Parse a user agent into GA4's vocabulary; repeated agents return the cached object.

    Never raises: a missing, non-string or unparseable agent yields an all-unknown verdict.
    """
    if not isinstance(user_agent, str) or not user_agent:
        return _UNKNOWN
    return _parse_bounded(user_agent[:MAX_USER_AGENT_LENGTH])


def describe_device(
    user_agent: str | None,
    client_hints: Mapping[str, object] | None,
    language: str | None,
    screen_resolution: str | None,
) -> DeviceChoice:
    """Choose between a ``device`` object and the raw user agent for one MP request."""
    raw = user_agent if isinstance(user_agent, str) and user_agent.strip() else None
    parsed = parse_user_agent(raw) if raw else _UNKNOWN
    hints = _read_hints(client_hints)
    if parsed.is_bot or hints.headless:
        return DeviceChoice(user_agent=raw)
    merged = _merge(parsed, hints)
    if not (merged.category and merged.browser and merged.operating_system):
        return DeviceChoice(user_agent=raw)
    return DeviceChoice(device=_device_fields(merged, language, screen_resolution))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse_bounded(user_agent: str) -> DeviceInfo:
    try:
        result = _parser().parse(user_agent)
    except ValueError:  # lone surrogates cannot cross into the native matcher
        return _UNKNOWN
    agent, hardware = result.user_agent, result.device
    operating_system, os_version = _os_of(result.os)
    family = agent.family if agent else None
    model = _model_of(hardware)
    brand = _brand_name(hardware.brand if hardware else None)
    return DeviceInfo(
        category=_category(user_agent, operating_system, hardware),
        brand=brand or (_brand_of_model(model) if model else None),
        model=model,
        operating_system=operating_system,
        operating_system_version=os_version,
        browser=_browser_name(family, operating_system),
        browser_version=None if family in _IN_APP_FAMILIES else _version_of(agent),
        is_bot=(hardware is not None and hardware.family == "Spider")
        or (family or "").startswith("Headless"),
    )


@functools.cache
def _parser() -> Parser:
    """Build the parser once, on first use, so importing this module stays cheap."""
    from ua_parser import BasicResolver, Parser, load_builtins, load_lazy_builtins

    try:
        from ua_parser.regex import Resolver
    except ImportError:
        return Parser(BasicResolver(load_builtins()))
    return Parser(Resolver(load_lazy_builtins()))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _brand_of_model(model: str) -> str | None:
    """The brand uap-core's device rules give a model, read from an Android-shaped agent."""
    probe = f"Mozilla/5.0 (Linux; Android 14; {model} Build/) Mobile Safari/537.36"
    try:
        hardware = _parser().parse_device(probe)
    except ValueError:
        return None
    return _brand_name(hardware.brand if hardware else None)


def _version_of(part: UserAgent | OS | None) -> str | None:
    if part is None:
        return None
    pieces = (part.major, part.minor, part.patch, part.patch_minor)
    return ".".join(piece for piece in pieces if piece) or None


def _os_of(system: OS | None) -> tuple[str | None, str | None]:
    if system is None or system.family not in _OS_NAMES:
        return None, None
    name, versioned = _OS_NAMES[system.family]
    return name, _version_of(system) if versioned else None


def _browser_name(family: str | None, operating_system: str | None) -> str | None:
    if family is None or family == "Other":
        return None
    if family in _IN_APP_FAMILIES:
        return {"iOS": "Safari (in-app)", "Android": "Android Webview"}.get(operating_system or "")
    return _BROWSER_NAMES.get(family, family)


def _brand_name(brand: str | None) -> str | None:
    if not brand:
        return None
    return _BRAND_NAMES.get(brand, brand)


def _model_of(hardware: Device | None) -> str | None:
    if hardware is None or hardware.brand in ("Generic", "Spider"):
        return None
    if hardware.model in _PLACEHOLDER_MODELS:
        return None
    return hardware.model or None


def _category(user_agent: str, operating_system: str | None, hardware: Device | None) -> str | None:
    """Derive GA4's category, which ua-parser does not give, from what it did parse."""
    lowered = user_agent.lower()
    family = hardware.family if hardware else ""
    if family == "Chromecast" or any(token in lowered for token in _TV_TOKENS):
        return "smart tv"
    if (
        family in _TABLET_FAMILIES
        or (hardware is not None and hardware.brand == "Generic_Android_Tablet")
        or "tablet" in lowered
        or (operating_system == "Android" and "mobile" not in lowered)
    ):
        return "tablet"
    if operating_system in _HANDHELD_OS or "mobi" in lowered:
        return "mobile"
    if operating_system in _DESKTOP_OS:
        return "desktop"
    return None


def _read_hints(raw: object) -> _Hints:
    """Read client hints defensively: any field of the wrong type counts as absent."""
    if not isinstance(raw, Mapping):
        return _NO_HINTS
    operating_system = _HINT_PLATFORMS.get((_text(raw.get("platform")) or "").lower())
    browser, browser_version, headless = _hint_browser(raw)
    return _Hints(
        operating_system=operating_system,
        operating_system_version=_hint_os_version(
            operating_system, _text(raw.get("platform_version"))
        ),
        model=_text(raw.get("model")),
        browser=browser,
        browser_version=browser_version,
        mobile=_flag(raw.get("mobile")),
        headless=headless,
    )


def _text(value: object) -> str | None:
    """A hint string without the quotes the structured-header form wraps it in."""
    if not isinstance(value, str):
        return None
    cleaned = value[:_MAX_HINT_LENGTH].strip().strip('"').strip()
    return cleaned or None


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"?1": True, "?0": False, "true": True, "false": False, "1": True, "0": False}.get(
        (_text(value) or "").lower()
    )


def _hint_brands(raw: Mapping[str, object]) -> list[tuple[str, str]]:
    """(brand, version) pairs, full versions first, from lists or the header string form."""
    for key in ("full_version_list", "brands"):
        value = raw.get(key)
        if isinstance(value, str):
            return _HEADER_BRAND.findall(value[:MAX_USER_AGENT_LENGTH])
        if isinstance(value, list | tuple) and value:
            pairs = [
                (_text(item.get("brand")), _text(item.get("version")))
                for item in value[:16]
                if isinstance(item, Mapping)
            ]
            return [(brand, version or "") for brand, version in pairs if brand]
    return []


def _hint_browser(raw: Mapping[str, object]) -> tuple[str | None, str | None, bool]:
    """The browser named by the hints: the first brand that is neither GREASE nor Chromium."""
    brands = [(b, v) for b, v in _hint_brands(raw) if not _is_grease(b)]
    named = [(b, v) for b, v in brands if b != "Chromium"] or brands
    if not named:
        return None, None, False
    brand, version = named[0]
    headless = any(b == "HeadlessChrome" for b, _ in brands)
    return _HINT_BROWSERS.get(brand, brand), version or None, headless


def _is_grease(brand: str) -> bool:
    letters = "".join(ch for ch in brand.lower() if ch.isalpha())
    return letters == "notabrand"


def _hint_os_version(operating_system: str | None, version: str | None) -> str | None:
    if operating_system is None or version is None:
        return None
    parts = version.split(".")
    if not all(part.isdigit() and part.isascii() for part in parts):
        return None
    if operating_system == "Windows":
        return _windows_release(parts)
    while len(parts) > 1 and int(parts[-1]) == 0:
        parts.pop()
    return ".".join(parts)


def _windows_release(parts: list[str]) -> str | None:
    """Map Windows' platform_version to its marketing release (13+ is Windows 11)."""
    major = int(parts[0])
    if major >= 13:
        return "11"
    if major >= 1:
        return "10"
    minor = int(parts[1]) if len(parts) > 1 else 0
    return {1: "7", 2: "8", 3: "8.1"}.get(minor)


def _merge(parsed: DeviceInfo, hints: _Hints) -> DeviceInfo:
    """Let hints that agree with the user agent replace the fields UA reduction froze."""
    same_os = hints.operating_system is not None and parsed.operating_system in (
        None,
        hints.operating_system,
    )
    same_browser = hints.browser is not None and parsed.browser in (None, hints.browser)
    merged = replace(
        parsed,
        operating_system=parsed.operating_system or hints.operating_system,
        browser=parsed.browser or hints.browser,
        category=_merged_category(parsed, hints),
    )
    if same_os:
        merged = _with_hint_hardware(merged, hints)
    if same_browser and hints.browser_version:
        merged = replace(merged, browser_version=hints.browser_version)
    return merged


def _with_hint_hardware(merged: DeviceInfo, hints: _Hints) -> DeviceInfo:
    version = hints.operating_system_version or merged.operating_system_version
    if not hints.model:
        return replace(merged, operating_system_version=version)
    brand = _brand_of_model(hints.model) or merged.brand
    return replace(merged, operating_system_version=version, model=hints.model, brand=brand)


def _merged_category(parsed: DeviceInfo, hints: _Hints) -> str | None:
    if parsed.category in ("tablet", "smart tv"):
        return parsed.category
    if hints.mobile:
        return "mobile"
    if parsed.category or hints.mobile is None:
        return parsed.category
    if hints.operating_system == "Android":
        return "tablet"
    return "desktop" if hints.operating_system in _DESKTOP_OS else None


def _device_fields(
    info: DeviceInfo, language: str | None, screen_resolution: str | None
) -> dict[str, str]:
    """The MP ``device`` object in its documented key order, known fields only."""
    fields = {
        "category": info.category,
        "language": _language_tag(language),
        "screen_resolution": _resolution(screen_resolution),
        "operating_system": info.operating_system,
        "operating_system_version": info.operating_system_version,
        "model": info.model,
        "brand": info.brand,
        "browser": info.browser,
        "browser_version": info.browser_version,
    }
    return {key: value for key, value in fields.items() if value}


def _language_tag(language: object) -> str | None:
    """``en-us``/``en_us`` -> ``en-US``, ``zh_hans_cn`` -> ``zh-Hans-CN``; else None."""
    if not isinstance(language, str):
        return None
    match = _LANGUAGE.fullmatch(language.strip()[:35])
    if match is None:
        return None
    script, region = match["script"], match["region"]
    parts = [match["lang"].lower(), script.title() if script else "", (region or "").upper()]
    return "-".join(part for part in parts if part)


def _resolution(screen_resolution: object) -> str | None:
    if isinstance(screen_resolution, str) and _RESOLUTION.fullmatch(screen_resolution):
        return screen_resolution
    return None
