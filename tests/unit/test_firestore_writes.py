"""The hand-built writes and reads are the library's, field for field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import document, write
from google.protobuf import timestamp_pb2

from shared.adapters.firestore.documents import field_values, version_order
from shared.adapters.firestore.writes import create_write, is_flat, merge_write, update_write

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
    "moment",
    [
        datetime(2027, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        datetime(2027, 1, 2, 3, 4, 5, 999999, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
        datetime(2027, 1, 2, 3, 4, 5, 1),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        DatetimeWithNanoseconds(2026, 12, 1, 8, 9, 10, nanosecond=123456789, tzinfo=UTC),
    ],
)
def test_a_moment_is_stored_as_the_librarys_timestamp(moment: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment)
    built = create_write(PATH, {"at": moment}).update.fields["at"].timestamp_value
    assert (built.seconds, built.nanos) == (expected.seconds, expected.nanos)


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


NESTED = {**DATA, "history": {"a": [1, 2, {"b": None}]}, "when": [DATA["expire_at"]]}


def test_a_document_that_is_not_flat_is_built_by_the_library() -> None:
    assert create_write(PATH, NESTED) == write.Write.pb(_helpers.pbs_for_create(PATH, NESTED)[0])
    version = datetime(2026, 12, 1, 8, 9, 10, 654321, tzinfo=UTC)
    option = _helpers.LastUpdateOption(version)
    library = write.Write.pb(_helpers.pbs_for_update(PATH, NESTED, option)[0])
    assert update_write(PATH, NESTED, version) == library


def test_an_update_takes_the_timestamp_a_commit_returned_with_its_nanoseconds() -> None:
    """A version read back from the service (a protobuf ``Timestamp``) is the precondition
    as it is, also for a document the library builds."""
    stamp = timestamp_pb2.Timestamp(seconds=1_764_576_550, nanos=123_456_789)
    assert update_write(PATH, DATA, stamp).current_document.update_time == stamp
    assert update_write(PATH, NESTED, stamp).current_document.update_time == stamp


def test_a_merge_with_an_array_union_is_the_librarys_set_with_merge() -> None:
    data = {
        "client_ids": firestore.ArrayUnion(["123.456"]),
        "last_linked_at": DATA["expire_at"],
        "expire_at": DATA["expire_at"],
    }
    library = write.Write.pb(_helpers.pbs_for_set_with_merge(PATH, data, merge=True)[0])
    built = merge_write(PATH, data)
    assert built == library
    assert [t.field_path for t in built.update_transforms] == ["client_ids"]
    assert sorted(built.update_mask.field_paths) == ["expire_at", "last_linked_at"]


def test_a_read_document_decodes_as_the_library_decodes_its_own_reads() -> None:
    """``field_values`` of a raw ``Document`` is what the library makes of the proto-plus
    document its ``get`` receives: nested maps, arrays, timestamps to the nanosecond and
    bytes included."""
    stored = create_write(PATH, NESTED).update
    stored.fields["precise"].timestamp_value.CopyFrom(
        timestamp_pb2.Timestamp(seconds=1_764_576_550, nanos=123_456_789)
    )
    received = document.Document.deserialize(stored.SerializeToString())
    library = _helpers.decode_dict(received.fields, None)
    assert field_values(stored) == library
    assert field_values(stored)["precise"].nanosecond == 123_456_789
    assert field_values(stored)["history"] == {"a": [1, 2, {"b": None}]}
    assert field_values(stored)["state"] == DATA["state"]


def test_versions_order_by_seconds_then_nanoseconds() -> None:
    earlier = timestamp_pb2.Timestamp(seconds=10, nanos=999_999_999)
    later = timestamp_pb2.Timestamp(seconds=11, nanos=0)
    assert version_order(earlier) < version_order(later)
    assert version_order(later) == version_order(timestamp_pb2.Timestamp(seconds=11))
