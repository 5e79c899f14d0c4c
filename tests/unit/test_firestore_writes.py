"""The state store's hand-built writes are the library's, field for field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import write

from shared.adapters.firestore.writes import create_write, is_flat, update_write

PATH = "projects/p/databases/(default)/documents/clients/123.456"
DATA = {
    "v": 3,
    "client_id": "123.456",
    "alias_of": None,
    "events": 7,
    "first_seen_micros": 1_763_800_000_000_000,
    "state": b"x\x01\x00compressed",
    "expire_at": datetime(2027, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    "ratio": 0.5,
    "flag": True,
}


def test_create_is_the_librarys_create() -> None:
    library = write.Write.pb(_helpers.pbs_for_create(PATH, DATA)[0])
    assert create_write(PATH, DATA) == library


@pytest.mark.parametrize(
    "version",
    [
        DatetimeWithNanoseconds(2026, 12, 1, 8, 9, 10, nanosecond=123456000, tzinfo=UTC),
        datetime(2026, 12, 1, 8, 9, 10, 654321, tzinfo=UTC),
    ],
)
def test_update_is_the_librarys_update_with_its_precondition(version: datetime) -> None:
    option = _helpers.LastUpdateOption(version)
    library = write.Write.pb(_helpers.pbs_for_update(PATH, DATA, option)[0])
    assert update_write(PATH, DATA, version) == library


def test_only_flat_documents_take_the_direct_path() -> None:
    assert is_flat(DATA)
    assert not is_flat({**DATA, "nested": {"a": 1}})
    assert not is_flat({**DATA, "a.b": 1})
    assert not is_flat({**DATA, "items": [1, 2]})
