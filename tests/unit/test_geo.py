"""MP ``user_location`` from sGTM ``event_location``: countries, regions, M49 areas, cities."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.geo import (
    CONTINENT_BY_SUBCONTINENT,
    ISO_COUNTRY_CODES,
    M49_BY_COUNTRY,
    user_location,
)

US = {"country_id": "US", "subcontinent_id": "021", "continent_id": "019"}


def test_brazilian_state_becomes_an_iso_3166_2_region() -> None:
    """sGTM's documented sample {country: BR, region: SP} becomes BR-SP in South America."""
    assert user_location({"country": "BR", "region": "SP"}) == {
        "region_id": "BR-SP",
        "country_id": "BR",
        "subcontinent_id": "005",
        "continent_id": "019",
    }


@pytest.mark.parametrize("region", ["USCA", "usca", "us-ca", "US-CA", " US-CA ", "CA", "ca"])
def test_region_spellings_normalise_to_country_dash_subdivision(region: str) -> None:
    """Glued CLDR, hyphenated and bare spellings of California all become US-CA."""
    assert user_location({"country": "US", "region": region}) == {"region_id": "US-CA", **US}


@pytest.mark.parametrize("region", ["ENG", "GBENG", "gb-eng", "gbeng"])
def test_three_letter_subdivisions_are_kept_whole(region: str) -> None:
    """England is GB-ENG whether sent bare, glued or hyphenated."""
    location = user_location({"country": "GB", "region": region})
    assert location == {
        "region_id": "GB-ENG",
        "country_id": "GB",
        "subcontinent_id": "154",
        "continent_id": "150",
    }


def test_numeric_subdivisions_are_kept() -> None:
    """Numeric ISO 3166-2 parts (Paris is FR-75) are subdivisions too."""
    location = user_location({"country": "FR", "region": "FR75"})
    assert location is not None
    assert location["region_id"] == "FR-75"


@pytest.mark.parametrize(
    ("country", "region"),
    [("US", "CA-ON"), ("BR", "USCA"), ("BR", "us-ca"), ("GB", "USCA")],
)
def test_region_from_another_country_is_dropped(country: str, region: str) -> None:
    """A region whose prefix disagrees with the country is not trusted; the country stays."""
    location = user_location({"country": country, "region": region})
    assert location is not None
    assert "region_id" not in location
    assert location["country_id"] == country


@pytest.mark.parametrize("region", ["", "  ", "!!", "A-B-C", "ABCD", "US-ABCD", 42, None, ["CA"]])
def test_malformed_region_is_dropped(region: object) -> None:
    """Regions that cannot be an ISO 3166-2 subdivision are left out."""
    assert user_location({"country": "US", "region": region}) == US


@pytest.mark.parametrize("country", ["ZZ", "XK", "UK", "EU", "USA", "U", "", "  ", 840, None])
def test_unknown_country_gives_no_location(country: object) -> None:
    """Without a real ISO 3166-1 alpha-2 country there is no user_location at all."""
    assert user_location({"country": country, "region": "CA", "city": "Somewhere"}) is None


@pytest.mark.parametrize("event_location", [None, "BR", ["BR"], {}, 7])
def test_missing_event_location_without_fallback_gives_nothing(event_location: object) -> None:
    """Nothing to go on means no user_location."""
    assert user_location(event_location) is None


def test_country_is_upper_cased() -> None:
    """Lower-case country codes are accepted and sent upper-case."""
    assert user_location({"country": " us "}) == US


def test_fallback_country_is_used_alone() -> None:
    """x-sst-system_properties.uc supplies the country, but never a region or city."""
    location = user_location({"country": "ZZ", "region": "IDF", "city": "Paris"}, "fr")
    assert location == {"country_id": "FR", "subcontinent_id": "155", "continent_id": "150"}
    assert user_location(None, "DE") == {
        "country_id": "DE",
        "subcontinent_id": "155",
        "continent_id": "150",
    }


def test_event_location_country_wins_over_fallback() -> None:
    """The fallback is only a fallback."""
    location = user_location({"country": "US"}, "DE")
    assert location == US


def test_invalid_fallback_country_gives_nothing() -> None:
    """A fallback that is not an ISO code does not rescue a missing country."""
    assert user_location({}, "XX") is None
    assert user_location({}, 276) is None


def test_city_is_trimmed_and_cut_to_one_hundred_characters() -> None:
    """City names travel as given, without padding and within MP's limit."""
    location = user_location({"country": "BR", "region": "SP", "city": "  São Paulo "})
    assert location is not None
    assert location["city"] == "São Paulo"
    assert list(location) == [
        "city",
        "region_id",
        "country_id",
        "subcontinent_id",
        "continent_id",
    ]
    long_city = user_location({"country": "US", "city": "x" * 150})
    assert long_city is not None
    assert long_city["city"] == "x" * 100


@pytest.mark.parametrize("city", ["", "   ", None, 12, ["Paris"]])
def test_empty_or_non_text_city_is_dropped(city: object) -> None:
    """Only a non-empty string is a city."""
    assert user_location({"country": "US", "city": city}) == US


def test_antarctica_has_a_country_but_no_m49_area() -> None:
    """AQ is an ISO code without an M49 region, so only country_id is sent."""
    assert user_location({"country": "AQ"}) == {"country_id": "AQ"}


def test_iso_table_holds_every_assigned_alpha_2_code() -> None:
    """249 upper-case two-letter codes, with M49 areas for all but Antarctica."""
    assert len(ISO_COUNTRY_CODES) == 249
    assert all(re.fullmatch(r"[A-Z]{2}", code) for code in ISO_COUNTRY_CODES)
    assert ISO_COUNTRY_CODES - set(M49_BY_COUNTRY) == {"AQ"}
    assert set(M49_BY_COUNTRY) <= ISO_COUNTRY_CODES


def test_m49_table_uses_five_continents_and_ga4_subcontinents() -> None:
    """Five inhabited M49 continents; Latin America and Sub-Saharan Africa split as GA4 does."""
    assert set(CONTINENT_BY_SUBCONTINENT.values()) == {"002", "019", "142", "150", "009"}
    assert set(CONTINENT_BY_SUBCONTINENT) == {
        *("015", "014", "017", "018", "011"),
        *("029", "013", "005", "021"),
        *("143", "030", "035", "034", "145"),
        *("151", "154", "039", "155"),
        *("053", "054", "057", "061"),
    }
    assert all(CONTINENT_BY_SUBCONTINENT[sub] == cont for sub, cont in M49_BY_COUNTRY.values())


@pytest.mark.parametrize(
    ("country", "subcontinent", "continent"),
    [
        ("US", "021", "019"),
        ("CA", "021", "019"),
        ("MX", "013", "019"),
        ("JM", "029", "019"),
        ("AR", "005", "019"),
        ("NG", "011", "002"),
        ("KE", "014", "002"),
        ("CD", "017", "002"),
        ("ZA", "018", "002"),
        ("EG", "015", "002"),
        ("JP", "030", "142"),
        ("TW", "030", "142"),
        ("IN", "034", "142"),
        ("SG", "035", "142"),
        ("TR", "145", "142"),
        ("KZ", "143", "142"),
        ("SE", "154", "150"),
        ("JE", "154", "150"),
        ("DE", "155", "150"),
        ("ES", "039", "150"),
        ("PL", "151", "150"),
        ("AU", "053", "009"),
        ("FJ", "054", "009"),
        ("GU", "057", "009"),
        ("WS", "061", "009"),
    ],
)
def test_country_maps_to_its_m49_areas(country: str, subcontinent: str, continent: str) -> None:
    """Spot checks across every continent against the UN M49 table."""
    assert user_location({"country": country}) == {
        "country_id": country,
        "subcontinent_id": subcontinent,
        "continent_id": continent,
    }


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))


@given(
    st.dictionaries(
        st.sampled_from(["country", "region", "city", "other"]), json_scalars, max_size=4
    )
    | json_scalars,
    json_scalars,
)
def test_user_location_never_raises_and_only_emits_validated_fields(
    event_location: object, fallback: object
) -> None:
    """Any input gives None or a block whose country is ISO and whose region belongs to it."""
    location = user_location(event_location, fallback)
    if location is None:
        return
    assert location["country_id"] in ISO_COUNTRY_CODES
    assert set(location) <= {"city", "region_id", "country_id", "subcontinent_id", "continent_id"}
    region = location.get("region_id")
    assert region is None or re.fullmatch(location["country_id"] + r"-[A-Z0-9]{1,3}", region)
