"""A session's traffic source from its landing event: paid, tagged, organic, referral, direct."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.traffic import (
    CAMPAIGN_VALUE_LIMIT,
    DIRECT,
    SEARCH_ENGINES,
    TrafficSource,
    classify_landing,
    is_ignored_referrer,
    is_same_site,
    search_engine_of,
)

SHOP = "https://shop.example/products/blue-kettle"
PARTNER_CHECKOUT = "https://pay.checkout-partner.com/session/8f2a/complete"


@pytest.mark.parametrize(
    ("landing", "expected"),
    [
        (
            f"{SHOP}?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale"
            "&utm_term=kettle&utm_content=hero_banner&utm_id=cmp-42",
            TrafficSource(
                source="newsletter",
                medium="email",
                campaign="spring_sale",
                term="kettle",
                content="hero_banner",
                campaign_id="cmp-42",
            ),
        ),
        (
            f"{SHOP}?utm_source=Facebook&utm_medium=Paid_Social&utm_campaign=BlackFriday",
            TrafficSource(source="Facebook", medium="Paid_Social", campaign="BlackFriday"),
        ),
        (
            f"{SHOP}?UTM_Source=partner&Utm_Medium=affiliate",
            TrafficSource(source="partner", medium="affiliate", campaign="(not set)"),
        ),
    ],
)
def test_utm_parameters_decide_a_tagged_landing(landing, expected):
    """Every utm_* value is carried over with its case, under case-insensitive names."""
    assert classify_landing(landing, "https://www.google.com/") == expected


@pytest.mark.parametrize(
    ("query", "source", "medium", "campaign"),
    [
        ("utm_source=newsletter", "newsletter", "(not set)", "(not set)"),
        ("utm_medium=email", "(not set)", "email", "(not set)"),
        ("utm_campaign=spring", "(not set)", "(not set)", "spring"),
        (
            "utm_source=newsletter&utm_medium=&utm_campaign=%20",
            "newsletter",
            "(not set)",
            "(not set)",
        ),
    ],
)
def test_missing_utm_source_medium_or_campaign_read_not_set(query, source, medium, campaign):
    """A tagged landing reports (not set) for whichever of source, medium, campaign is blank."""
    result = classify_landing(f"{SHOP}?{query}", None)
    assert (result.source, result.medium, result.campaign) == (source, medium, campaign)


@pytest.mark.parametrize(
    ("query", "field", "value"),
    [
        ("utm_campaign=spring%20sale%202025", "campaign", "spring sale 2025"),
        ("utm_campaign=spring+sale", "campaign", "spring sale"),
        ("utm_term=caf%C3%A9+cr%C3%A8me", "term", "café crème"),
        ("utm_content=%20%20hero%20", "content", "hero"),
        ("utm_source=a%26b%3Dc", "source", "a&b=c"),
        ("utm_source=&utm_source=second", "source", "second"),
        ("utm_source=first&utm_source=second", "source", "first"),
        ("utm_source=100%", "source", "100%"),
    ],
)
def test_utm_values_are_decoded_and_trimmed(query, field, value):
    """Percent and plus encoding is undone, blanks skipped, the first real value wins."""
    assert getattr(classify_landing(f"{SHOP}?{query}", None), field) == value


def test_utms_in_the_fragment_are_not_read():
    """GA4 reads the query only, so a fragment's utm_* leaves the landing untagged."""
    assert classify_landing(f"{SHOP}#utm_source=newsletter&utm_medium=email", None) == DIRECT


@pytest.mark.parametrize(
    ("query", "click_id"),
    [
        ("gclid=Cj0KCQiA_example_gclid", "gclid"),
        ("dclid=CJCl5fLi_dclid", "dclid"),
        ("gbraid=0AAAAADkEGBD_gbraid", "gbraid"),
        ("wbraid=CjkKCQ_wbraid", "wbraid"),
        ("GCLID=Cj0KCQiA_upper", "gclid"),
        ("wbraid=w&gclid=g", "gclid"),
    ],
)
def test_google_click_ids_are_paid_google_traffic(query, click_id):
    """Any auto-tagging click id is google / cpc and names which parameter decided it."""
    result = classify_landing(f"{SHOP}?{query}", "https://www.bing.com/")
    assert result == TrafficSource(
        source="google", medium="cpc", campaign="(not set)", click_id=click_id
    )


def test_click_id_overrides_utm_source_and_medium_but_keeps_campaign_details():
    """With gclid and UTMs together, source/medium are google/cpc, the UTM details stay."""
    landing = (
        f"{SHOP}?utm_source=facebook&utm_medium=social&utm_campaign=spring"
        "&utm_term=kettle&utm_content=ad_b&utm_id=77&gclid=Cj0KCQiA"
    )
    assert classify_landing(landing, None) == TrafficSource(
        source="google",
        medium="cpc",
        campaign="spring",
        term="kettle",
        content="ad_b",
        campaign_id="77",
        click_id="gclid",
    )


@pytest.mark.parametrize(
    "query",
    ["gclid=", "gclid=%20", "_gl=1*1abc2de*_ga*MTIzNDU2Nzg5LjE3MDAwMDAwMDA.", "fbclid=IwAR0"],
)
def test_blank_click_ids_linker_and_other_ad_ids_are_not_sources(query):
    """An empty gclid, a _gl linker or fbclid leaves the decision to the referrer."""
    result = classify_landing(f"{SHOP}?{query}", "https://news.ycombinator.com/item?id=1")
    assert (result.source, result.medium) == ("news.ycombinator.com", "referral")


@pytest.mark.parametrize(
    ("referrer", "engine"),
    [
        ("https://www.google.com/", "google"),
        ("https://www.google.co.uk/", "google"),
        ("https://www.google.com.br/search?q=chaleira", "google"),
        ("https://google.de/", "google"),
        ("https://m.google.co.jp/", "google"),
        ("android-app://com.google.android.googlequicksearchbox/https/www.google.com", "google"),
        ("https://www.bing.com/search?q=blue+kettle", "bing"),
        ("https://cn.bing.com/", "bing"),
        ("https://duckduckgo.com/", "duckduckgo"),
        ("https://search.yahoo.com/search?p=kettle", "yahoo"),
        ("https://uk.search.yahoo.com/", "yahoo"),
        ("https://search.yahoo.co.jp/search?p=kettle", "yahoo"),
        ("https://www.baidu.com/link?url=x", "baidu"),
        ("https://m.baidu.com/", "baidu"),
        ("https://yandex.ru/search/?text=kettle", "yandex"),
        ("https://yandex.com.tr/", "yandex"),
        ("https://www.ecosia.org/search?q=kettle", "ecosia"),
        ("https://m.search.naver.com/search.naver?query=kettle", "naver"),
        ("https://search.seznam.cz/?q=kettle", "seznam"),
        ("https://www.qwant.com/?q=kettle", "qwant"),
        ("https://www.startpage.com/", "startpage"),
        ("https://search.brave.com/search?q=kettle", "brave"),
        ("https://search.aol.com/", "aol"),
        ("https://www.ask.com/web?q=kettle", "ask"),
        ("https://www.sogou.com/", "sogou"),
        ("https://search.daum.net/search?q=kettle", "daum"),
        ("https://www.mojeek.com/search?q=kettle", "mojeek"),
        ("HTTPS://WWW.GOOGLE.FR:443/", "google"),
    ],
)
def test_search_engine_referrers_are_organic(referrer, engine):
    """A known engine's referrer, country TLDs and www/m prefixes included, is organic."""
    assert classify_landing(SHOP, referrer) == TrafficSource(
        source=engine, medium="organic", campaign="(organic)"
    )


def test_search_engine_list_is_at_least_fifteen_engines():
    """The engine table covers the common engines, each named once."""
    names = [name for name, _ in SEARCH_ENGINES]
    assert len(names) >= 15
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    "host",
    [
        "mail.google.com",
        "docs.google.com",
        "google.example.com",
        "notgoogle.com",
        "mybing.com",
        "yahoo.com.evil.net",
        "news.yahoo.com",
    ],
)
def test_lookalike_and_non_search_hosts_are_not_engines(host):
    """Only an engine's search hosts are organic; Gmail or lookalike domains are not."""
    assert search_engine_of(host) is None


@pytest.mark.parametrize(
    ("referrer", "source"),
    [
        ("https://l.facebook.com/l.php?u=https%3A%2F%2Fshop.example%2F", "l.facebook.com"),
        ("https://news.ycombinator.com/item?id=40000000", "news.ycombinator.com"),
        ("https://www.reddit.com/r/tea/comments/abc/", "reddit.com"),
        ("https://m.facebook.com/", "m.facebook.com"),
        ("https://mail.google.com/mail/u/0/", "mail.google.com"),
        ("http://blog.partner.co.uk:8080/post?id=1", "blog.partner.co.uk"),
        ("android-app://com.google.android.gm/", "com.google.android.gm"),
    ],
)
def test_other_sites_are_referrals_named_by_host_without_www(referrer, source):
    """Another site's referrer is host / referral / (referral), a leading www. dropped."""
    assert classify_landing(SHOP, referrer) == TrafficSource(
        source=source, medium="referral", campaign="(referral)"
    )


@pytest.mark.parametrize(
    ("landing", "referrer"),
    [
        ("https://shop.example/", "https://www.shop.example/cart"),
        ("https://www.shop.example/", "https://shop.example/"),
        ("https://checkout.shop.example/pay", "https://blog.shop.example/post"),
        ("https://www.kettles.co.uk/", "https://help.kettles.co.uk/faq"),
        ("https://loja.example.com.br/", "https://www.example.com.br/"),
    ],
)
def test_self_referrals_fall_through_to_direct(landing, referrer):
    """A referrer on the landing page's own site is no referrer at all."""
    assert classify_landing(landing, referrer) == DIRECT


def test_self_referral_from_a_search_hosts_own_site_is_not_organic():
    """Same-site is checked first, so a site's own google.* pages do not count as organic."""
    assert classify_landing("https://store.google.com/", "https://www.google.com/") == DIRECT


@pytest.mark.parametrize(
    ("landing", "referrer"),
    [
        ("https://www.tea.co.uk/", "https://www.coffee.co.uk/"),
        ("https://shop.example.com.br/", "https://other.com.br/"),
        ("https://a.example/", "https://a.example.org/"),
    ],
)
def test_different_sites_under_one_country_suffix_are_referrals(landing, referrer):
    """Sharing co.uk or com.br does not make two sites one."""
    assert classify_landing(landing, referrer).medium == "referral"


@pytest.mark.parametrize(
    "ignored",
    [
        ["checkout-partner.com"],
        ["*.checkout-partner.com"],
        [".Checkout-Partner.COM"],
        ["pay.checkout-partner.com", "unrelated.example"],
    ],
)
def test_ignored_domains_fall_through_to_direct(ignored):
    """A referrer from an ignored domain or any subdomain of it does not count."""
    assert classify_landing(SHOP, PARTNER_CHECKOUT, ignored_domains=ignored) == DIRECT


def test_ignored_domains_also_silence_search_engines():
    """Ignoring a domain applies whatever kind of referrer it would have been."""
    assert (
        classify_landing(SHOP, "https://www.google.com/", ignored_domains=["google.com"]) == DIRECT
    )


@pytest.mark.parametrize(
    ("host", "ignored", "expected"),
    [
        ("pay.checkout-partner.com", ["checkout-partner.com"], True),
        ("checkout-partner.com", ["*.checkout-partner.com"], True),
        ("evilcheckout-partner.com", ["checkout-partner.com"], False),
        ("checkout-partner.com.evil.net", ["checkout-partner.com"], False),
        ("checkout-partner.com", ["pay.checkout-partner.com"], False),
        ("checkout-partner.com", ["", "*", "  "], False),
    ],
)
def test_ignored_referrer_matches_the_domain_and_its_subdomains_only(host, ignored, expected):
    """An entry covers its host and subdomains, never a lookalike or a parent domain."""
    assert is_ignored_referrer(host, ignored) is expected


def test_ignored_domains_do_not_outrank_a_tagged_landing():
    """Ignoring the referrer does not discard the landing's own UTMs."""
    result = classify_landing(
        f"{SHOP}?utm_source=partner&utm_medium=affiliate",
        PARTNER_CHECKOUT,
        ignored_domains=["checkout-partner.com"],
    )
    assert (result.source, result.medium) == ("partner", "affiliate")


@pytest.mark.parametrize(
    ("host", "other", "expected"),
    [
        ("www.shop.example", "shop.example", True),
        ("a.b.example.co.uk", "example.co.uk", True),
        ("example.co.uk", "other.co.uk", False),
        ("abc.go.com", "espn.go.com", True),
        ("10.0.0.1", "10.0.0.2", False),
        ("localhost", "LOCALHOST.", True),
    ],
)
def test_same_site_compares_registrable_labels(host, other, expected):
    """Two hosts are one site by their last two labels, three after a country's co/com."""
    assert is_same_site(host, other) is expected


@pytest.mark.parametrize(
    ("landing", "referrer"),
    [
        (SHOP, None),
        (SHOP, ""),
        (None, None),
        ("", ""),
        (SHOP, "javascript:void(0)"),
        (SHOP, "about:blank"),
        (SHOP, "data:text/html,hello"),
        (SHOP, "www.google.com"),
        (SHOP, "not a url at all"),
        (SHOP, "http://"),
        (SHOP, "https://exa mple.com/"),
        (SHOP, "http://[::1"),
        ("http://[::1", "http://[::1"),
        ("::::", "%%%"),
        (SHOP, "https://\u2100.example/"),
    ],
)
def test_missing_or_unusable_input_is_direct(landing, referrer):
    """No referrer, a non-web referrer or a malformed URL classifies as direct, never raises."""
    assert classify_landing(landing, referrer) == DIRECT


def test_tagged_landing_survives_a_malformed_referrer():
    """A broken referrer does not stop a landing's UTMs from deciding the source."""
    result = classify_landing(f"{SHOP}?utm_source=newsletter", "http://[::1")
    assert result.source == "newsletter"


def test_huge_inputs_are_classified():
    """Megabyte-long URLs are read, not rejected; the first value of a parameter wins."""
    landing = f"{SHOP}?utm_source=big&" + "x=1&" * 100_000 + "utm_medium=" + "m" * 1_000_000
    result = classify_landing(landing, "https://" + "a." * 100_000 + "example/")
    assert (result.source, len(result.medium)) == ("big", 1_000_000)


@given(st.text(max_size=300), st.text(max_size=300))
def test_classify_landing_never_raises(landing, referrer):
    """Arbitrary text for either URL yields a source with source, medium and campaign."""
    result = classify_landing(landing, referrer, ignored_domains=[referrer])
    assert result.source
    assert result.medium
    assert result.campaign


@given(st.from_regex(r"https?://[a-z.]{1,30}/\?[a-z_=&%0-9A-F+]{0,60}", fullmatch=True))
def test_classify_landing_never_raises_on_url_shaped_text(landing):
    """URL-shaped input with arbitrary query bytes always classifies."""
    assert classify_landing(landing, landing).medium


def test_direct_values_are_those_ga4_reports():
    """Direct traffic is (direct) / (none) with campaign (direct)."""
    assert (DIRECT.source, DIRECT.medium, DIRECT.campaign) == ("(direct)", "(none)", "(direct)")
    assert DIRECT.term is DIRECT.content is DIRECT.campaign_id is DIRECT.click_id is None


def test_campaign_details_omits_empty_values():
    """Only set params are sent; click_id is bookkeeping, not an MP param."""
    source = TrafficSource(
        source="google", medium="cpc", campaign="spring", term="", content="  ", click_id="gclid"
    )
    assert source.campaign_details() == {"source": "google", "medium": "cpc", "campaign": "spring"}


def test_campaign_details_names_every_mp_param():
    """All six campaign_details params are filled from the matching fields."""
    source = TrafficSource("nl", "email", "spring", "kettle", "hero", "cmp-42")
    assert source.campaign_details() == {
        "source": "nl",
        "medium": "email",
        "campaign": "spring",
        "term": "kettle",
        "content": "hero",
        "campaign_id": "cmp-42",
    }


def test_campaign_details_truncates_to_ga4_limit():
    """Values longer than GA4's 100 characters are cut, shorter ones kept whole."""
    long_value = "é" * 150
    details = TrafficSource(long_value, "email", "c" * 100, term="t" * 101).campaign_details()
    assert CAMPAIGN_VALUE_LIMIT == 100
    assert details["source"] == "é" * 100
    assert details["campaign"] == "c" * 100
    assert details["term"] == "t" * 100
    assert details["medium"] == "email"


def test_campaign_details_from_a_long_utm_landing_is_truncated():
    """A landing's long utm_campaign is kept whole in the source and cut only when sent."""
    campaign = "q" * 250
    result = classify_landing(f"{SHOP}?utm_source=nl&utm_campaign={campaign}", None)
    assert result.campaign == campaign
    assert result.campaign_details()["campaign"] == "q" * 100


optional_text = st.none() | st.text(max_size=120)
traffic_sources = st.builds(
    TrafficSource,
    source=st.text(max_size=120),
    medium=st.text(max_size=120),
    campaign=st.text(max_size=120),
    term=optional_text,
    content=optional_text,
    campaign_id=optional_text,
    click_id=st.none() | st.sampled_from(["gclid", "dclid", "gbraid", "wbraid"]),
)


@given(traffic_sources)
def test_from_dict_inverts_as_dict(source):
    """Any source survives a trip through its dict form unchanged."""
    assert TrafficSource.from_dict(source.as_dict()) == source


@given(traffic_sources)
def test_as_dict_inverts_from_dict(source):
    """A stored dict decodes and re-encodes to the same dict, None values included."""
    stored = source.as_dict()
    assert TrafficSource.from_dict(stored).as_dict() == stored
    assert set(stored) == {
        "source",
        "medium",
        "campaign",
        "term",
        "content",
        "campaign_id",
        "click_id",
    }


def test_from_dict_ignores_unknown_keys_and_reads_absent_optionals_as_none():
    """A newer writer's extra keys and an older writer's missing optionals still decode."""
    decoded = TrafficSource.from_dict(
        {"source": "google", "medium": "organic", "campaign": "(organic)", "channel": "x"}
    )
    assert decoded == TrafficSource("google", "organic", "(organic)")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"medium": "organic", "campaign": "(organic)"}, ValueError),
        ({"source": None, "medium": "organic", "campaign": "(organic)"}, ValueError),
        ({"source": 3, "medium": "organic", "campaign": "(organic)"}, TypeError),
        ({"source": "g", "medium": "organic", "campaign": "(organic)", "term": 5}, TypeError),
    ],
)
def test_from_dict_rejects_missing_or_non_text_fields(data, error):
    """A corrupt stored source fails loudly instead of becoming a wrong attribution."""
    with pytest.raises(error):
        TrafficSource.from_dict(data)
