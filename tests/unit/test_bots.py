"""Traffic hygiene: known bots are recognised, browsers are not, and modes apply."""

from __future__ import annotations

import pytest

from shared.domain.bots import BOT_PATTERNS, BotVerdict, classify_user_agent, decide_bot_action

SAMPLES = {
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "google-ads": "AdsBot-Google (+http://www.google.com/adsbot.html)",
    "google-fetchers": "FeedFetcher-Google; (+http://www.google.com/feedfetcher.html)",
    "bingbot": "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "yahoo": "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
    "duckduckbot": "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "baiduspider": "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "yandexbot": "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "sogou": "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
    "applebot": "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Safari/605.1.15 (Applebot/0.1)",
    "petalbot": "Mozilla/5.0 (Linux; Android 7.0;) Mobile Safari/537.36 (compatible; PetalBot)",
    "seznambot": "Mozilla/5.0 (compatible; SeznamBot/4.0; +https://o-seznam.cz/napoveda)",
    "naver": "Mozilla/5.0 (compatible; Yeti/1.1; +https://naver.me/spd)",
    "qwant": "Mozilla/5.0 (compatible; Qwantify/2.4w; +https://www.qwant.com/)/2.4w",
    "mojeek": "Mozilla/5.0 (compatible; MojeekBot/0.11; +https://www.mojeek.com/bot.html)",
    "exabot": "Mozilla/5.0 (compatible; Exabot/3.0; +http://www.exabot.com/go/robot)",
    "ahrefsbot": "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "semrushbot": "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "mj12bot": "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
    "dotbot": "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot)",
    "blexbot": "Mozilla/5.0 (compatible; BLEXBot/1.0; +http://webmeup-crawler.com/)",
    "dataforseo": "Mozilla/5.0 (compatible; DataForSeoBot/1.0; +https://dataforseo.com/dataforseo-bot)",
    "serpstat": "serpstatbot/2.1 (advanced backlink tracking bot; https://serpstatbot.com/)",
    "screaming-frog": "Screaming Frog SEO Spider/19.4",
    "rogerbot": "rogerbot/1.2 (https://moz.com/help/guides/moz-procedures/what-is-rogerbot)",
    "openai": "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.1",
    "anthropic": "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0)",
    "commoncrawl": "CCBot/2.0 (https://commoncrawl.org/faq/)",
    "perplexity": "Mozilla/5.0 AppleWebKit/537.36 (compatible; PerplexityBot/1.0)",
    "bytespider": "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (compatible; Bytespider)",
    "amazonbot": "Mozilla/5.0 (Macintosh) AppleWebKit/600.2.5 (compatible; Amazonbot/0.1)",
    "meta-agent": (
        "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)"
    ),
    "diffbot": (
        "Mozilla/5.0 (X11; U; Linux x86_64) Gecko Firefox/3.6.3 (.NET CLR 3.5.30729; Diffbot/0.1)"
    ),
    "facebook": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "twitterbot": "Twitterbot/1.0",
    "linkedinbot": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "slackbot": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "discordbot": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "telegrambot": "TelegramBot (like TwitterBot)",
    "whatsapp": "WhatsApp/2.23.20.0 A",
    "pinterestbot": "Mozilla/5.0 (compatible; Pinterestbot/1.0; +http://www.pinterest.com/bot.html)",
    "redditbot": "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
    "skype": "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
    "embedly": "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
    "lighthouse": (
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse"
    ),
    "pagespeed": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0 Safari/537.36 PTST/231201",
    "uptimerobot": "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "pingdom": "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
    "statuscake": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0 Safari/537.36 StatusCake",
    "site24x7": "Site24x7",
    "datadog": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0 Safari/537.36 DatadogSynthetics",
    "newrelic": "NewRelicPinger/1.0 (269834)",
    "catchpoint": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0 Safari/537.36 Catchpoint",
    "headless-chrome": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/120.0.6099.71 Safari/537.36"
    ),
    "phantomjs": (
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 PhantomJS/2.1.1 Safari/538.1"
    ),
    "slimerjs": "Mozilla/5.0 (X11; Linux x86_64; rv:38.0) Gecko/20100101 SlimerJS/0.10.0",
    "cypress": "Mozilla/5.0 (X11; Linux x86_64) Chrome/118.0 Safari/537.36 Cypress/13.6.0",
    "scripted-browser": "Mozilla/5.0 (Windows NT 10.0) HtmlUnit/2.70.0",
    "python": "python-requests/2.31.0",
    "curl": "curl/8.4.0",
    "wget": "Wget/1.21.4",
    "go-http-client": "Go-http-client/2.0",
    "node": "axios/1.6.2",
    "java": "Java/17.0.9",
    "perl": "libwww-perl/6.72",
    "ruby": "Faraday v2.7.11",
    "php": "GuzzleHttp/7",
    "api-clients": "PostmanRuntime/7.36.0",
    "generic-bot": "Mozilla/5.0 (compatible; SomeNewCrawler/1.0; +https://crawler.example)",
}

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; CUBOT P60 Build/SP1A.210812.016) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.35.105;FBBV/614011325]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 Instagram 337.0.3.23.54 (iPhone14,5; iOS 17_5)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 YaBrowser/24.1.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36 OPR/85.0.0.0",
]


@pytest.mark.parametrize(("label", "user_agent"), sorted(SAMPLES.items()))
def test_each_known_bot_is_recognised_under_its_own_label(label: str, user_agent: str) -> None:
    """A real user agent of each listed bot is caught by its own pattern, not a later one."""
    verdict = classify_user_agent(user_agent)
    assert verdict.is_bot
    assert verdict.label == label


def test_every_pattern_has_a_sample_user_agent() -> None:
    """The maintained list and its samples stay in step, so no pattern goes untested."""
    labels = [label for label, _, _ in BOT_PATTERNS]
    assert len(labels) == len(set(labels))
    assert set(labels) == set(SAMPLES)


@pytest.mark.parametrize("user_agent", BROWSERS)
def test_browsers_are_not_bots(user_agent: str) -> None:
    """Mainstream browsers, in-app browsers and CUBOT phones pass as people."""
    assert classify_user_agent(user_agent) == BotVerdict(False)


def test_matching_ignores_case() -> None:
    """User agents are matched case-insensitively."""
    assert classify_user_agent("GOOGLEBOT/2.1").label == "googlebot"


@pytest.mark.parametrize("user_agent", [None, "", "   "])
def test_an_empty_user_agent_is_not_a_bot_by_default(user_agent: str | None) -> None:
    """A missing user agent is undecided, since the container may not forward it."""
    assert classify_user_agent(user_agent) == BotVerdict(False)


def test_an_empty_user_agent_can_be_treated_as_a_bot() -> None:
    """Deployments that always forward the user agent can flag its absence."""
    verdict = classify_user_agent("", empty_is_bot=True)
    assert verdict == BotVerdict(True, "empty", "generic")


def test_categories_are_reported_for_counting() -> None:
    """The verdict carries the category of the matched pattern."""
    assert classify_user_agent(SAMPLES["ahrefsbot"]).category == "seo"
    assert classify_user_agent(SAMPLES["curl"]).category == "library"


@pytest.mark.parametrize(
    ("is_bot", "mode", "action"),
    [
        (True, "flag", "flag"),
        (True, "drop", "drop"),
        (True, "off", "keep"),
        (False, "flag", "keep"),
        (False, "drop", "keep"),
        (False, "off", "keep"),
    ],
)
def test_the_bot_mode_decides_the_action(is_bot: bool, mode: str, action: str) -> None:
    """Bots are flagged or dropped by setting; browsers are always kept."""
    verdict = BotVerdict(is_bot, "x" if is_bot else None)
    assert decide_bot_action(verdict, mode) == action


def test_an_unknown_bot_mode_is_refused() -> None:
    """Only ``flag``, ``drop`` and ``off`` exist."""
    with pytest.raises(ValueError, match="bot mode"):
        decide_bot_action(BotVerdict(False), "block")
