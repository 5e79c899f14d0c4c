"""The client document codec reads every version ever written, and refuses the unknown."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.firestore.codec import CURRENT_VERSION, UnreadableState, decode, encode
from shared.errors import PermanentError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "state"


def stored(version: int) -> dict[str, Any]:
    """A document as the released code of ``version`` wrote it (bytes kept as base64)."""
    raw = json.loads((FIXTURES / f"client-v{version}.json").read_text())
    return {
        key: base64.b64decode(value["bytes_base64"])
        if isinstance(value, dict) and "bytes_base64" in value
        else value
        for key, value in raw.items()
    }


@pytest.mark.parametrize("version", [1, 2])
def test_a_document_of_every_earlier_version_decodes_to_the_same_state(version: int) -> None:
    """v1 (maps) and v2 (positional blob) hold one stream's state; both read back alike."""
    state = decode(stored(version))
    reference = decode(stored(2))
    assert state == reference
    assert state.events == 6
    assert state.identity.linked_users == ("cust-1",)
    assert [w.number for w in state.streams[0].windows] == [1, 3, 2]
    assert state.processed_result("e5") is not None


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_document_is_rewritten_in_the_current_version(version: int) -> None:
    """The next save upgrades it, losing nothing."""
    state = decode(stored(version))
    document = encode(state)
    assert document["v"] == CURRENT_VERSION
    assert decode(document) == state


def test_an_answer_remembered_before_a_field_was_added_still_answers() -> None:
    """A redelivery of an event remembered by v2 gets its answer, new fields defaulted."""
    answer = decode(stored(2)).processed_result("e3")
    assert answer is not None
    assert answer.session_number == 1
    assert answer.traffic_source is None
    assert answer.earliest_in_session is False


@pytest.mark.parametrize(
    "document",
    [
        {"v": 99, "client_id": "1.2"},
        {"client_id": "1.2"},
        {"v": 2, "client_id": "1.2", "state": b"not zlib"},
        {"v": 3, "client_id": "1.2", "state": __import__("zlib").compress(b'{"m": []}')},
    ],
    ids=["future version", "no version", "damaged blob", "missing parts"],
)
def test_an_unreadable_document_is_a_permanent_error_with_a_reason(
    document: dict[str, Any],
) -> None:
    """Never a bare exception that fails every redelivery: the message is dead-lettered."""
    with pytest.raises(UnreadableState) as raised:
        decode(document)
    assert isinstance(raised.value, PermanentError)
    assert raised.value.reason == "unreadable_state"
