"""Consent Mode strings: ``x-ga-gcs``, ``x-ga-gcd``, merging, and MP's consent block."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.consent import (
    ConsentSignals,
    decode_gcd,
    decode_gcs,
    gcd_letter_states,
    merge,
    mp_consent,
)

ALL_GRANTED = ConsentSignals(True, True, True, True)
ALL_DENIED = ConsentSignals(False, False, False, False)
NOTHING_STATED = ConsentSignals()

# letter: (default, update, effective), as published by Analytics Debugger
GCD_LETTERS: dict[str, tuple[bool | None, bool | None, bool | None]] = {
    "l": (None, None, None),
    "p": (False, None, False),
    "q": (False, False, False),
    "r": (False, True, True),
    "t": (True, None, True),
    "u": (True, False, False),
    "v": (True, True, True),
    "m": (None, False, False),
    "n": (None, True, True),
}

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(),
    st.text(),
    st.lists(st.text(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)


@pytest.mark.parametrize(
    ("gcs", "ad_storage", "analytics_storage"),
    [("G100", False, False), ("G101", False, True), ("G110", True, False), ("G111", True, True)],
)
def test_gcs_samples_decode_to_storage_signals(
    gcs: str, ad_storage: bool, analytics_storage: bool
) -> None:
    """Each of the four gcs values states both storages and nothing else."""
    assert decode_gcs(gcs) == ConsentSignals(
        ad_storage=ad_storage, analytics_storage=analytics_storage
    )


def test_gcs_tolerates_surrounding_whitespace() -> None:
    """A gcs value padded by a proxy still decodes."""
    assert decode_gcs(" G101\n") == ConsentSignals(ad_storage=False, analytics_storage=True)


@pytest.mark.parametrize(
    "value", ["", "G1", "G10", "G102", "G1111", "g111", "G211", "G1 11", 111, None, b"G111", True]
)
def test_gcs_garbage_states_nothing(value: object) -> None:
    """Anything but G1 followed by two binary digits is unknown, not denied."""
    assert decode_gcs(value) == NOTHING_STATED


@pytest.mark.parametrize(("letter", "states"), GCD_LETTERS.items())
def test_gcd_letter_table_matches_published_decoding(
    letter: str, states: tuple[bool | None, bool | None, bool | None]
) -> None:
    """Every letter seen in real gcd strings decodes to its published default/update pair."""
    default, update, effective = states
    assert gcd_letter_states(letter) == (default, update)
    gcd = "1" + f"1{letter}" * 4 + "5"
    assert decode_gcd(gcd) == ConsentSignals(effective, effective, effective, effective)


@pytest.mark.parametrize("letter", ["A", "B", "F", "Q", "g", "l", "w", "0", "1"])
def test_gcd_letters_with_no_state_bits_state_nothing(letter: str) -> None:
    """Base64url digits whose two states are 0 or 1 leave the signal unstated."""
    assert gcd_letter_states(letter) == (None, None)


@pytest.mark.parametrize(
    ("letter", "states"), [("P", (True, True)), ("_", (True, True)), ("9", (True, None))]
)
def test_gcd_upper_case_and_digits_follow_standard_base64url_order(
    letter: str, states: tuple[bool | None, bool | None]
) -> None:
    """Characters never seen in real strings decode by A=0 .. _=63, not digits-first."""
    assert gcd_letter_states(letter) == states


@pytest.mark.parametrize("letter", ["!", ".", "é", "", "pp", " "])
def test_gcd_letter_outside_the_alphabet_states_nothing(letter: str) -> None:
    """A character that is not one base64url digit carries no state."""
    assert gcd_letter_states(letter) == (None, None)


@pytest.mark.parametrize(
    ("gcd", "expected"),
    [
        ("11p1p1p1p5", ALL_DENIED),
        ("13l3l3l3l1l1", NOTHING_STATED),
        ("13r3r3r3r5l1", ALL_GRANTED),
        ("13v3v3v3v5l1", ALL_GRANTED),
        ("13r3p3q3t5", ConsentSignals(True, False, False, True)),
        ("11u1n1m1l5", ConsentSignals(False, True, False, None)),
    ],
)
def test_gcd_real_world_samples_decode_each_signal(gcd: str, expected: ConsentSignals) -> None:
    """Letters at positions 2, 4, 6, 8 are the four signals, in Consent Mode order."""
    assert decode_gcd(gcd) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1",
        "11p1p1p",
        "11p1p1p1",
        "x1p1p1p1p5",
        "11p1p1!1p5",
        "11p 1p1p1p5",
        None,
        11,
        ["11p1p1p1p5"],
        b"11p1p1p1p5",
    ],
)
def test_gcd_without_the_documented_shape_states_nothing(value: object) -> None:
    """Short strings, a non-digit version, foreign characters and non-strings are all unknown."""
    assert decode_gcd(value) == NOTHING_STATED


def test_gcd_ignores_the_privacy_marker_and_trailing_blocks() -> None:
    """Only the four consent letters count; what follows position 8 changes nothing."""
    assert decode_gcd("13r3r3r3r5") == decode_gcd("13r3r3r3r1l1zzzz") == ALL_GRANTED


@given(st.text())
def test_decoders_never_raise_on_any_text(text: str) -> None:
    """Any text decodes to signals that are each True, False or None."""
    for decoded in (decode_gcs(text), decode_gcd(text)):
        assert all(isinstance(v, bool | None) for v in vars(decoded).values())


@given(anything)
def test_decoders_never_raise_on_any_value(value: object) -> None:
    """Values of the wrong type decode to nothing stated (text may still decode)."""
    if not isinstance(value, str):
        assert decode_gcs(value) == NOTHING_STATED
        assert decode_gcd(value) == NOTHING_STATED


@given(
    st.lists(st.sampled_from(sorted(GCD_LETTERS)), min_size=4, max_size=4),
    st.sampled_from("0123456789"),
)
def test_gcd_decodes_each_position_independently(letters: list[str], version: str) -> None:
    """Any combination of known letters decodes position by position through the table."""
    gcd = version + "".join(f"3{letter}" for letter in letters) + "5"
    expected = ConsentSignals(*(GCD_LETTERS[letter][2] for letter in letters))
    assert decode_gcd(gcd) == expected


def test_merge_takes_the_first_stated_value_per_signal() -> None:
    """The more authoritative source wins where it speaks; others fill its gaps."""
    from_gcd = ConsentSignals(ad_storage=True, ad_user_data=None, ad_personalization=False)
    from_gcs = decode_gcs("G100")
    merged = merge(from_gcd, from_gcs, ALL_GRANTED)
    assert merged == ConsentSignals(
        ad_storage=True, analytics_storage=False, ad_user_data=True, ad_personalization=False
    )


def test_merge_of_nothing_states_nothing() -> None:
    """No sources, or only silent ones, leave every signal unstated."""
    assert merge() == NOTHING_STATED
    assert merge(NOTHING_STATED, decode_gcd("garbage")) == NOTHING_STATED


def test_mp_consent_spells_both_signals() -> None:
    """Stated ad signals become MP's GRANTED/DENIED strings; storages are not part of it."""
    assert mp_consent(decode_gcd("13r3r3r3r5")) == {
        "ad_user_data": "GRANTED",
        "ad_personalization": "GRANTED",
    }
    assert mp_consent(decode_gcd("11p1p1p1p5")) == {
        "ad_user_data": "DENIED",
        "ad_personalization": "DENIED",
    }


def test_mp_consent_leaves_out_unstated_signals() -> None:
    """gcs says nothing about the ad signals, so the block is empty and GA4 uses its default."""
    assert mp_consent(decode_gcs("G111")) == {}
    assert mp_consent(ConsentSignals(ad_user_data=False)) == {"ad_user_data": "DENIED"}


@pytest.mark.parametrize("npa", ["1", " 1 ", 1, 1.0, True])
def test_npa_denies_ad_personalization_even_when_granted(npa: object) -> None:
    """A request for non-personalised ads overrides a granted ad_personalization."""
    block = mp_consent(ALL_GRANTED, npa=npa)
    assert block == {"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}


def test_npa_states_a_denial_where_nothing_was_stated() -> None:
    """npa alone is enough to send ad_personalization DENIED."""
    assert mp_consent(NOTHING_STATED, npa="1") == {"ad_personalization": "DENIED"}


@pytest.mark.parametrize("npa", ["0", 0, False, None, "true", "yes", 2, [], {"npa": "1"}])
def test_values_other_than_one_do_not_set_npa(npa: object) -> None:
    """Only 1 in some spelling asks for non-personalised ads."""
    assert mp_consent(ALL_GRANTED, npa=npa)["ad_personalization"] == "GRANTED"


@pytest.mark.parametrize("properties", [{"_npa": "1"}, {"_npa": {"value": "1"}}, {"_npa": 1}])
def test_npa_user_property_denies_ad_personalization(properties: dict[str, object]) -> None:
    """The _npa user property, flat or MP-shaped, means non-personalised ads."""
    block = mp_consent(ALL_GRANTED, user_properties=properties)
    assert block["ad_personalization"] == "DENIED"


@pytest.mark.parametrize("properties", [{"_npa": "0"}, {"npa": "1"}, {}, None])
def test_other_user_properties_leave_ad_personalization_alone(
    properties: dict[str, object] | None,
) -> None:
    """Without _npa set to 1 the decoded consent stands."""
    block = mp_consent(ALL_GRANTED, user_properties=properties)
    assert block["ad_personalization"] == "GRANTED"
