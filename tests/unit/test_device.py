"""The MP device object: GA4's vocabulary, hints over frozen agents, never a lossy device."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ga4_stitch.agents import AGENTS, AGENTS_BY_NAME, KnownAgent
from shared.domain.device import (
    MAX_USER_AGENT_LENGTH,
    DeviceChoice,
    describe_device,
    parse_user_agent,
)
from shared.domain.validation import DEVICE_FIELDS

BROWSERS = [agent for agent in AGENTS if not agent.truth.is_bot]
BOTS = [agent for agent in AGENTS if agent.truth.is_bot]
CHROME_WINDOWS = AGENTS_BY_NAME["chrome-windows-10"].user_agent
CHROME_ANDROID = AGENTS_BY_NAME["chrome-android-without-hints"].user_agent
IPHONE = AGENTS_BY_NAME["safari-iphone-ios17"].user_agent


def _device(
    user_agent: str | None,
    hints: Any = None,
    language: Any = None,
    resolution: Any = None,
) -> dict[str, str]:
    choice = describe_device(user_agent, hints, language, resolution)
    assert choice.device is not None, choice
    return choice.device


def _major_minor(version: str | None) -> str | None:
    return ".".join(version.split(".")[:2]) if version else None


def _windows_hints(platform_version: str) -> dict[str, Any]:
    return {
        "platform": "Windows",
        "platform_version": platform_version,
        "mobile": False,
        "full_version_list": [{"brand": "Google Chrome", "version": "131.0.6778.86"}],
    }


@pytest.mark.parametrize("agent", BROWSERS, ids=lambda agent: agent.name)
def test_catalogue_browser_reports_its_truth(agent: KnownAgent) -> None:
    """Each real browser in the catalogue comes out as GA4 should report it."""
    device = _device(agent.user_agent, agent.client_hints)
    truth = agent.truth
    assert device["category"] == truth.category
    assert device["browser"] == truth.browser
    assert device["operating_system"] == truth.operating_system
    assert device.get("operating_system_version") == truth.operating_system_version
    assert device.get("brand") == truth.brand
    assert _major_minor(device.get("browser_version")) == truth.browser_version
    if truth.model is not None:
        assert device.get("model") == truth.model


@pytest.mark.parametrize("agent", BOTS, ids=lambda agent: agent.name)
def test_bots_go_out_as_their_raw_user_agent(agent: KnownAgent) -> None:
    """A crawler is flagged and sent as its own user agent so GA4's bot filter sees it."""
    assert parse_user_agent(agent.user_agent).is_bot
    choice = describe_device(agent.user_agent, agent.client_hints, "en-us", "1920x1080")
    assert choice == DeviceChoice(device=None, user_agent=agent.user_agent)


@pytest.mark.parametrize("agent", BROWSERS, ids=lambda agent: agent.name)
def test_real_browsers_are_not_bots(agent: KnownAgent) -> None:
    """No catalogue browser is mistaken for a crawler."""
    assert not parse_user_agent(agent.user_agent).is_bot


@pytest.mark.parametrize(
    ("platform_version", "release"),
    [("0.1.0", "7"), ("0.3.0", "8.1"), ("10.0.0", "10"), ("13.0.0", "11"), ("19.0.0", "11")],
)
def test_windows_release_comes_from_hints_not_the_frozen_agent(
    platform_version: str, release: str
) -> None:
    """The reduced agent says NT 10.0 on every Windows; the hinted platform version decides."""
    device = _device(CHROME_WINDOWS, _windows_hints(platform_version))
    assert device["operating_system_version"] == release


def test_android_model_and_version_come_from_hints() -> None:
    """Hints replace the reduced agent's ``Android 10; K`` with the real model and version."""
    hints = {
        "platform": "Android",
        "platform_version": "15.0.0",
        "model": "Pixel 9",
        "mobile": True,
    }
    without = _device(CHROME_ANDROID)
    hinted = _device(CHROME_ANDROID, hints)
    assert without["operating_system_version"] == "10"
    assert "model" not in without
    assert "brand" not in without
    assert hinted["operating_system_version"] == "15"
    assert hinted["model"] == "Pixel 9"
    assert hinted["brand"] == "Google"


def test_hints_naming_another_os_do_not_relabel_the_device() -> None:
    """Hints that contradict the agent's OS are ignored for version, model and brand."""
    hints = {"platform": "Android", "platform_version": "15.0.0", "model": "Pixel 9"}
    device = _device(IPHONE, hints)
    assert device["operating_system"] == "iOS"
    assert device["operating_system_version"] == "17.5.1"
    assert device["brand"] == "Apple"
    assert device["model"] == "iPhone"


def test_hinted_full_version_beats_the_reduced_browser_version() -> None:
    """Chrome's reduced agent says 131.0.0.0; the full version list knows the build."""
    device = _device(CHROME_WINDOWS, _windows_hints("15.0.0"))
    assert device["browser_version"] == "131.0.6778.86"


@pytest.mark.parametrize(
    "versions",
    [
        [("Chromium", "131.0.6778.86"), ("Not_A Brand", "24.0.0.0"), ("Microsoft Edge", "131.0")],
        [("Not/A)Brand", "8.0.0.0"), ("Microsoft Edge", "131.0"), ("Chromium", "131.0.6778.86")],
        [("Microsoft Edge", "131.0"), ("Chromium", "131.0.6778.86"), ("Not A(Brand", "99.0")],
    ],
)
def test_grease_and_chromium_entries_never_name_the_browser(
    versions: list[tuple[str, str]],
) -> None:
    """Whatever the order, the branded entry names the browser, in GA4's spelling."""
    hints = {
        "platform": "Windows",
        "platform_version": "15.0.0",
        "mobile": False,
        "full_version_list": [{"brand": brand, "version": v} for brand, v in versions],
    }
    device = _device(None, hints)
    assert device["browser"] == "Edge"
    assert device["browser_version"] == "131.0"
    assert device["category"] == "desktop"
    assert device["operating_system_version"] == "11"


def test_mobile_hint_makes_a_phone_unless_the_agent_says_tablet() -> None:
    """``mobile: true`` overrides a desktop-looking agent but never demotes a tablet."""
    tablet = AGENTS_BY_NAME["chrome-galaxy-tab"].user_agent
    linux = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    )
    assert _device(tablet, {"platform": "Android", "mobile": True})["category"] == "tablet"
    assert _device(linux, {"platform": "Linux", "mobile": True})["category"] == "mobile"
    assert _device(linux, {"platform": "Linux", "mobile": False})["category"] == "desktop"


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        (
            {
                "brands": [
                    {"brand": "Chromium", "version": "131"},
                    {"brand": "Not_A Brand", "version": "24"},
                    {"brand": "Google Chrome", "version": "131"},
                ],
                "mobile": False,
                "platform": '"macOS"',
            },
            ("desktop", "Macintosh", "Chrome", "131"),
        ),
        (
            {
                "brands": '"Chromium";v="131", "Not_A Brand";v="24", "Google Chrome";v="131"',
                "mobile": "?1",
                "platform": '"Android"',
            },
            ("mobile", "Android", "Chrome", "131"),
        ),
    ],
    ids=["structured", "header-strings"],
)
def test_low_entropy_hints_with_quoted_values_normalise(
    hints: dict[str, Any], expected: tuple[str, str, str, str]
) -> None:
    """Low-entropy hints, quoted as in their headers, still describe the device."""
    device = _device(None, hints)
    got = (
        device["category"],
        device["operating_system"],
        device["browser"],
        device["browser_version"],
    )
    assert got == expected


def test_headless_hints_mark_a_bot_even_behind_a_browser_agent() -> None:
    """A HeadlessChrome brand in the hints keeps the hit on its raw user agent."""
    hints = {"platform": "Windows", "brands": [{"brand": "HeadlessChrome", "version": "131"}]}
    choice = describe_device(CHROME_WINDOWS, hints, None, None)
    assert choice == DeviceChoice(device=None, user_agent=CHROME_WINDOWS)


@pytest.mark.parametrize(
    "user_agent", ["SomeInternalApp/3.2", "okhttp/4.12.0", "Mozilla/5.0", "Dalvik/2.1.0"]
)
def test_unreadable_agent_is_sent_raw_for_ga4_to_parse(user_agent: str) -> None:
    """An agent that does not give category, browser and OS is passed through untouched."""
    assert describe_device(user_agent, None, "en-us", "1536x960") == DeviceChoice(
        device=None, user_agent=user_agent
    )


@pytest.mark.parametrize("user_agent", [None, "", "   "])
def test_nothing_known_yields_neither_device_nor_agent(user_agent: str | None) -> None:
    """With no agent and no hints, the MP body carries neither field."""
    assert describe_device(user_agent, None, "en-us", "1536x960") == DeviceChoice()


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en-us", "en-US"),
        ("en_us", "en-US"),
        ("EN-GB", "en-GB"),
        ("de", "de"),
        ("zh_hans_cn", "zh-Hans-CN"),
        ("es-419", "es-419"),
        ("english please", None),
        ("", None),
        (42, None),
    ],
)
def test_language_is_normalised_to_a_bcp47_tag(language: Any, expected: str | None) -> None:
    """Language arrives in GTM's lower-case or underscore forms and leaves as a BCP-47 tag."""
    assert _device(CHROME_WINDOWS, language=language).get("language") == expected


@pytest.mark.parametrize(
    ("resolution", "kept"),
    [
        ("1536x960", True),
        ("390x844", True),
        ("1536 x 960", False),
        ("0x0", False),
        ("1536x", False),
        ("x960", False),
        ("\u0661\u0665x\u0669\u0666", False),
        (None, False),
        ([1536, 960], False),
    ],
)
def test_screen_resolution_is_kept_only_when_well_formed(resolution: Any, kept: bool) -> None:
    """Only ``WIDTHxHEIGHT`` in ASCII digits reaches GA4."""
    device = _device(CHROME_WINDOWS, resolution=resolution)
    assert ("screen_resolution" in device) is kept
    if kept:
        assert device["screen_resolution"] == resolution


@pytest.mark.parametrize(
    ("user_agent", "hints"),
    [
        ("\ud800\udfff Mozilla/5.0 (Windows NT 10.0)", None),
        ("\x00" * 64, None),
        ("A" * 1_000_000, None),
        ("(" * 5_000 + "Chrome/" * 500, None),
        (12345, None),
        (b"Mozilla/5.0", None),
        (CHROME_WINDOWS, "not a mapping"),
        (CHROME_WINDOWS, {"platform": 5, "platform_version": ["15"], "mobile": "maybe"}),
        (CHROME_WINDOWS, {"platform": "Windows", "platform_version": "15.x.0"}),
        (CHROME_WINDOWS, {"platform": "Windows", "platform_version": "9" * 40}),
        (CHROME_WINDOWS, {"full_version_list": [1, None, {"brand": 7}], "brands": {}}),
        (CHROME_ANDROID, {"platform": "Android", "model": "\ud800", "mobile": True}),
        (None, {"platform": '""', "full_version_list": "garbage"}),
    ],
)
def test_garbage_never_raises_and_keeps_the_invariant(user_agent: Any, hints: Any) -> None:
    """Malformed agents and hints of any type yield a valid choice rather than an error."""
    _assert_valid(describe_device(user_agent, hints, "en-us", "1x1"))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_HINTS = st.none() | st.dictionaries(
    st.sampled_from(
        ["platform", "platform_version", "model", "mobile", "brands", "full_version_list"]
    ),
    _JSON | st.sampled_from(["Windows", "macOS", '"Android"', "15.0.0", "?1"]),
)


@settings(max_examples=300, deadline=None)
@given(
    user_agent=st.none() | st.text(max_size=200) | st.sampled_from([a.user_agent for a in AGENTS]),
    hints=_HINTS,
    language=st.none() | st.text(max_size=12),
    resolution=st.none() | st.text(max_size=12),
)
def test_device_is_never_sent_without_category_browser_and_os(
    user_agent: str | None, hints: Any, language: str | None, resolution: str | None
) -> None:
    """For any input, a device dict carries the three fields GA4 needs, else the raw agent."""
    choice = describe_device(user_agent, hints, language, resolution)
    _assert_valid(choice)
    if choice.device is None and user_agent and user_agent.strip():
        assert choice.user_agent == user_agent


def _assert_valid(choice: DeviceChoice) -> None:
    assert choice.device is None or choice.user_agent is None
    if choice.device is not None:
        assert {"category", "browser", "operating_system"} <= choice.device.keys()
        assert choice.device.keys() <= DEVICE_FIELDS
        assert all(isinstance(value, str) and value for value in choice.device.values())
        assert choice.device["category"] in {"desktop", "mobile", "tablet", "smart tv"}


def test_repeated_agent_returns_the_cached_verdict() -> None:
    """An equal agent string, even a different object, returns the very same verdict."""
    first = parse_user_agent(CHROME_WINDOWS)
    rebuilt = "".join(list(CHROME_WINDOWS))
    assert rebuilt is not CHROME_WINDOWS
    assert parse_user_agent(rebuilt) is first


def test_overlong_agents_are_judged_by_their_bounded_prefix() -> None:
    """Agents are cut before parsing, so two that differ past the limit share one verdict."""
    base = CHROME_WINDOWS.ljust(MAX_USER_AGENT_LENGTH)
    first = parse_user_agent(base + "tail-one" * 1000)
    assert parse_user_agent(base + "another tail") is first
    assert first.browser == "Chrome"
