"""A catalogue of real, current user agents with what GA4 should report for each.

The traffic simulator draws devices from it and the tests check ``describe_device``
against it. Invariants:

- ``user_agent`` strings are as browsers and crawlers send them, including Chrome's
  reduced forms (``Windows NT 10.0`` on Windows 11, ``Android 10; K`` on every Android)
  and the iOS in-app browsers' app tokens.
- ``client_hints`` is what the GTM server container forwards as ``client_hints`` for that
  browser (high-entropy values included), or ``None`` for browsers that send none
  (Firefox, Safari, every iOS browser) and for crawlers. Treat it as read-only: copy it
  (``copy.deepcopy``) before changing it.
- ``truth`` is in GA4's report vocabulary and is what an honest reading of the agent and
  its hints yields: where both are silent or frozen (Safari's ``10_15_7``, an Android
  Chrome without hints) the truth is what they say, not the hardware's real value, since
  nothing downstream can know better. ``browser_version`` is ``major.minor``; OS versions
  are as GA4 shows them (``10``, ``11``, ``17.5.1``, ``14``); ``brand`` and ``model`` are
  ``None`` when the hardware is unknown (Windows PCs, reduced Android agents).
- For crawlers only ``is_bot`` is ground truth; their other fields are ``None`` unless
  they drive a real browser engine (headless Chrome).
- iPad Safari's default "desktop website" mode sends a Mac agent that no one can tell
  from a Mac's; it is left out rather than recorded with a truth nothing could reach.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["AGENTS", "AGENTS_BY_NAME", "DeviceTruth", "KnownAgent"]


@dataclass(frozen=True, slots=True)
class DeviceTruth:
    """What GA4 should report for one agent, in GA4's vocabulary."""

    category: str | None
    operating_system: str | None
    operating_system_version: str | None
    browser: str | None
    browser_version: str | None
    brand: str | None
    model: str | None
    is_bot: bool = False


@dataclass(frozen=True, slots=True)
class KnownAgent:
    """One catalogue entry: a user agent, the client hints sent with it, and its truth."""

    name: str
    user_agent: str
    client_hints: Mapping[str, object] | None
    truth: DeviceTruth


def _hints(
    brand: str,
    version: str,
    *,
    chromium: str,
    platform: str,
    platform_version: str,
    grease: tuple[str, str] = ("Not_A Brand", "24"),
    mobile: bool = False,
    model: str = "",
    architecture: str = "x86",
) -> Mapping[str, object]:
    """High-entropy client hints as a Chromium browser sends them, GREASE brand included."""
    full = [
        {"brand": "Chromium", "version": chromium},
        {"brand": grease[0], "version": f"{grease[1]}.0.0.0"},
    ]
    if brand != "Chromium":
        full.append({"brand": brand, "version": version})
    return {
        "architecture": architecture if not mobile else "",
        "bitness": "64" if not mobile else "",
        "brands": [{"brand": b["brand"], "version": b["version"].split(".")[0]} for b in full],
        "full_version_list": full,
        "mobile": mobile,
        "model": model,
        "platform": platform,
        "platform_version": platform_version,
        "wow64": False,
    }


_CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
_CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
_CHROME_ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
_CHROME_131_DESKTOP = "131.0.6778.86"
_CHROME_131_ANDROID = "131.0.6778.81"


def _chrome(
    platform: str,
    platform_version: str,
    *,
    mobile: bool = False,
    model: str = "",
    architecture: str = "x86",
) -> Mapping[str, object]:
    chromium = _CHROME_131_ANDROID if platform == "Android" else _CHROME_131_DESKTOP
    return _hints(
        "Google Chrome",
        chromium,
        chromium=chromium,
        platform=platform,
        platform_version=platform_version,
        mobile=mobile,
        model=model,
        architecture=architecture,
    )


AGENTS: Final[tuple[KnownAgent, ...]] = (
    # Desktop.
    KnownAgent(
        "chrome-windows-10",
        _CHROME_WIN,
        _chrome("Windows", "10.0.0"),
        DeviceTruth("desktop", "Windows", "10", "Chrome", "131.0", None, None),
    ),
    KnownAgent(
        "chrome-windows-11",
        _CHROME_WIN,
        _chrome("Windows", "15.0.0"),
        DeviceTruth("desktop", "Windows", "11", "Chrome", "131.0", None, None),
    ),
    KnownAgent(
        "chrome-macos",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        _chrome("macOS", "15.2.0", architecture="arm"),
        DeviceTruth("desktop", "Macintosh", "15.2", "Chrome", "131.0", "Apple", "Mac"),
    ),
    KnownAgent(
        "edge-windows-11",
        _CHROME_WIN + " Edg/131.0.0.0",
        _hints(
            "Microsoft Edge",
            "131.0.2903.86",
            chromium=_CHROME_131_DESKTOP,
            platform="Windows",
            platform_version="15.0.0",
        ),
        DeviceTruth("desktop", "Windows", "11", "Edge", "131.0", None, None),
    ),
    KnownAgent(
        "opera-windows-10",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
        _hints(
            "Opera",
            "115.0.5322.77",
            chromium="130.0.6723.117",
            platform="Windows",
            platform_version="10.0.0",
            grease=("Not?A_Brand", "99"),
        ),
        DeviceTruth("desktop", "Windows", "10", "Opera", "115.0", None, None),
    ),
    KnownAgent(
        "firefox-windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        None,
        DeviceTruth("desktop", "Windows", "10", "Firefox", "133.0", None, None),
    ),
    KnownAgent(
        "firefox-linux",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        None,
        DeviceTruth("desktop", "Linux", None, "Firefox", "133.0", None, None),
    ),
    KnownAgent(
        "firefox-ubuntu",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        None,
        DeviceTruth("desktop", "Linux", None, "Firefox", "133.0", None, None),
    ),
    KnownAgent(
        "firefox-macos",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
        None,
        DeviceTruth("desktop", "Macintosh", "10.15", "Firefox", "133.0", "Apple", "Mac"),
    ),
    KnownAgent(
        "safari-macos",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.2 Safari/605.1.15",
        None,
        DeviceTruth("desktop", "Macintosh", "10.15.7", "Safari", "18.2", "Apple", "Mac"),
    ),
    KnownAgent(
        "chrome-chromeos",
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        _chrome("Chrome OS", "16093.68.0"),
        DeviceTruth("desktop", "Chrome OS", "16093.68", "Chrome", "131.0", None, None),
    ),
    # Phones.
    KnownAgent(
        "safari-iphone-ios17",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        None,
        DeviceTruth("mobile", "iOS", "17.5.1", "Safari", "17.5", "Apple", "iPhone"),
    ),
    KnownAgent(
        "safari-iphone-ios18",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
        None,
        DeviceTruth("mobile", "iOS", "18.2", "Safari", "18.2", "Apple", "iPhone"),
    ),
    KnownAgent(
        "chrome-iphone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        None,
        DeviceTruth("mobile", "iOS", "17.5", "Chrome", "131.0", "Apple", "iPhone"),
    ),
    KnownAgent(
        "firefox-iphone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
        None,
        DeviceTruth("mobile", "iOS", "18.1", "Firefox", "133.0", "Apple", "iPhone"),
    ),
    KnownAgent(
        "facebook-iphone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/22B91 [FBAN/FBIOS;FBAV/493.0.0.53.106;FBBV/681512133;"
        "FBDV/iPhone15,3;FBMD/iPhone;FBSN/iOS;FBSV/18.1.1;FBSS/3;FBID/phone;FBLC/en_US;"
        "FBOP/5;FBRV/683433451]",
        None,
        DeviceTruth("mobile", "iOS", "18.1.1", "Safari (in-app)", None, "Apple", "iPhone15,3"),
    ),
    KnownAgent(
        "instagram-iphone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 Instagram 357.0.0.25.101 (iPhone14,5; iOS 17_6_1; "
        "en_US; en; scale=3.00; 1170x2532; 658331046)",
        None,
        DeviceTruth("mobile", "iOS", "17.6.1", "Safari (in-app)", None, "Apple", "iPhone14,5"),
    ),
    KnownAgent(
        "webview-iphone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148",
        None,
        DeviceTruth("mobile", "iOS", "17.5.1", "Safari (in-app)", None, "Apple", "iPhone"),
    ),
    KnownAgent(
        "chrome-pixel",
        _CHROME_ANDROID,
        _chrome("Android", "14.0.0", mobile=True, model="Pixel 8"),
        DeviceTruth("mobile", "Android", "14", "Chrome", "131.0", "Google", "Pixel 8"),
    ),
    KnownAgent(
        "chrome-samsung-galaxy",
        _CHROME_ANDROID,
        _chrome("Android", "14.0.0", mobile=True, model="SM-S911B"),
        DeviceTruth("mobile", "Android", "14", "Chrome", "131.0", "Samsung", "SM-S911B"),
    ),
    KnownAgent(
        "samsung-internet-galaxy",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36",
        _hints(
            "Samsung Internet",
            "27.0.7.21",
            chromium="125.0.6422.165",
            platform="Android",
            platform_version="14.0.0",
            grease=("Not.A/Brand", "24"),
            mobile=True,
            model="SM-S918B",
        ),
        DeviceTruth("mobile", "Android", "14", "Samsung Internet", "27.0", "Samsung", "SM-S918B"),
    ),
    KnownAgent(
        "chrome-android-without-hints",
        _CHROME_ANDROID,
        None,
        DeviceTruth("mobile", "Android", "10", "Chrome", "131.0", None, None),
    ),
    KnownAgent(
        "facebook-android-pixel",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 "
        "[FB_IAB/FB4A;FBAV/489.0.0.66.81;]",
        None,
        DeviceTruth("mobile", "Android", "14", "Android Webview", None, "Google", "Pixel 8"),
    ),
    KnownAgent(
        "webview-xiaomi",
        "Mozilla/5.0 (Linux; Android 13; Redmi Note 12 Pro 5G Build/TKQ1.221114.001; wv) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 "
        "Mobile Safari/537.36",
        None,
        DeviceTruth(
            "mobile", "Android", "13", "Android Webview", "131.0", "Xiaomi", "Redmi Note 12 Pro 5G"
        ),
    ),
    KnownAgent(
        "firefox-android",
        "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
        None,
        DeviceTruth("mobile", "Android", "14", "Firefox", "133.0", None, None),
    ),
    # Tablets.
    KnownAgent(
        "safari-ipad",
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        None,
        DeviceTruth("tablet", "iOS", "17.5", "Safari", "17.5", "Apple", "iPad"),
    ),
    KnownAgent(
        "chrome-ipad",
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        None,
        DeviceTruth("tablet", "iOS", "17.5", "Chrome", "131.0", "Apple", "iPad"),
    ),
    KnownAgent(
        "chrome-galaxy-tab",
        _CHROME_ANDROID_TABLET,
        _chrome("Android", "14.0.0", model="SM-X710"),
        DeviceTruth("tablet", "Android", "14", "Chrome", "131.0", "Samsung", "SM-X710"),
    ),
    KnownAgent(
        "firefox-android-tablet",
        "Mozilla/5.0 (Android 14; Tablet; rv:133.0) Gecko/133.0 Firefox/133.0",
        None,
        DeviceTruth("tablet", "Android", "14", "Firefox", "133.0", None, None),
    ),
    # Smart TVs.
    KnownAgent(
        "samsung-tizen-tv",
        "Mozilla/5.0 (SMART-TV; Linux; Tizen 5.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/2.2 Chrome/63.0.3239.84 TV Safari/537.36",
        None,
        DeviceTruth("smart tv", "Tizen", "5.0", "Samsung Internet", "2.2", "Samsung", None),
    ),
    KnownAgent(
        "lg-webos-tv",
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/87.0.4280.88 Safari/537.36 WebAppManager",
        None,
        DeviceTruth("smart tv", "webOS", None, "Chrome", "87.0", "LG", None),
    ),
    KnownAgent(
        "chromecast-google-tv",
        "Mozilla/5.0 (Linux; Android 12.0; Build/STTL.240206.002) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/114.0.0.0 Safari/537.36 CrKey/1.56.500000 "
        "DeviceType/AndroidTV",
        None,
        DeviceTruth("smart tv", "Android", "12.0", "Chrome", "114.0", "Google", None),
    ),
    KnownAgent(
        "chromecast",
        "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/88.0.4324.208 Safari/537.36 CrKey/1.54.248666",
        None,
        DeviceTruth("smart tv", "Linux", None, "Chrome", "88.0", "Google", "Chromecast"),
    ),
    # Crawlers and automation.
    KnownAgent(
        "googlebot",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        None,
        DeviceTruth(None, None, None, None, None, None, None, is_bot=True),
    ),
    KnownAgent(
        "googlebot-smartphone",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 "
        "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        None,
        DeviceTruth(None, None, None, None, None, None, None, is_bot=True),
    ),
    KnownAgent(
        "bingbot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
        "+http://www.bing.com/bingbot.htm) Chrome/131.0.0.0 Safari/537.36",
        None,
        DeviceTruth(None, None, None, None, None, None, None, is_bot=True),
    ),
    KnownAgent(
        "headless-chrome",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.0.0 Safari/537.36",
        _hints(
            "HeadlessChrome",
            _CHROME_131_DESKTOP,
            chromium=_CHROME_131_DESKTOP,
            platform="Linux",
            platform_version="6.8.0",
        ),
        DeviceTruth("desktop", "Linux", None, "Chrome", "131.0", None, None, is_bot=True),
    ),
)

AGENTS_BY_NAME: Final[Mapping[str, KnownAgent]] = {agent.name: agent for agent in AGENTS}
