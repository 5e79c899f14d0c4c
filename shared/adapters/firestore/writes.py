"""The ``Write`` protobufs the functions commit (``documents.DocumentService.commit``).

``WriteBatch.create`` / ``update`` walk the data to find field paths, sentinels and
transforms, then build proto-plus messages that the commit converts back to protobufs:
about a fifth of the resolve function's CPU per event (``benchmarks/profile_functions.py``)
for a document of seven flat fields. For a flat map of the value types the state store
and the ledger write (``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes`` and
timezone-aware ``datetime``), these builders produce the same ``Write`` directly;
anything else (maps, arrays, sentinels such as ``ArrayUnion``) is built by the library's
own helpers, as the identity links are. Either way the result is the library's ``Write``
(``tests/unit/test_firestore_writes.py`` compares them field by field).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.cloud.firestore_v1.types import common, document, write
from google.protobuf import timestamp_pb2

__all__ = ["FLAT_TYPES", "create_write", "is_flat", "merge_write", "update_write"]

_FIELDS: dict[type, str] = {
    bool: "boolean_value",
    int: "integer_value",
    float: "double_value",
    str: "string_value",
    bytes: "bytes_value",
}
"""Value field by exact type (``bool`` is not taken for ``int``; subclasses go the
library's way)."""
FLAT_TYPES = (type(None), datetime, *_FIELDS)
_WRITE = write.Write.pb()
_DOCUMENT = document.Document.pb()
_VALUE = document.Value.pb()
_MASK = common.DocumentMask.pb()
_PRECONDITION = common.Precondition.pb()
_TIMESTAMP = timestamp_pb2.Timestamp
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def is_flat(data: Mapping[str, Any]) -> bool:
    """True when every value is one these builders encode and every key a plain name."""
    return all(
        (type(value) in _FIELDS or value is None or isinstance(value, datetime))
        and key.isidentifier()
        for key, value in data.items()
    )


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """``Timestamp.FromDatetime``'s seconds and nanos (a naive moment is UTC; microseconds
    kept), by date arithmetic instead of its time-tuple round trip (about 1.4% of the
    forward function's Python CPU, sampled, for the ledger entry's two moments)."""
    delta = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)) - _EPOCH
    return _TIMESTAMP(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1_000)


def _value(value: Any) -> Any:
    field = _FIELDS.get(type(value))
    if field is not None:
        return _VALUE(**{field: value})
    if value is None:
        return _VALUE(null_value=0)
    if isinstance(value, datetime):
        return _VALUE(timestamp_value=_timestamp(value))
    raise TypeError(f"not a flat Firestore value: {type(value).__name__}")


def _document(path: str, data: Mapping[str, Any]) -> Any:
    return _DOCUMENT(name=path, fields={key: _value(value) for key, value in data.items()})


def _library_write(writes: Any) -> Any:
    (only,) = writes
    return write.Write.pb(only)


def create_write(path: str, data: Mapping[str, Any]) -> Any:
    """``create``: the document, which must not exist yet."""
    if not is_flat(data):
        from google.cloud.firestore_v1 import _helpers

        return _library_write(_helpers.pbs_for_create(path, data))
    return _WRITE(update=_document(path, data), current_document=_PRECONDITION(exists=False))


def update_write(path: str, data: Mapping[str, Any], last_update_time: Any) -> Any:
    """``update`` of the named fields, if the document was last written at
    ``last_update_time`` (a ``datetime``, or the timestamp a commit or read returned, kept
    to the nanosecond)."""
    precondition = _PRECONDITION(update_time=_version_stamp(last_update_time))
    if not is_flat(data):
        from google.cloud.firestore_v1 import _helpers

        built = _library_write(_helpers.pbs_for_update(path, data, None))
        built.current_document.CopyFrom(precondition)
        return built
    return _WRITE(
        update=_document(path, data),
        update_mask=_MASK(field_paths=sorted(data)),
        current_document=precondition,
    )


def merge_write(path: str, data: Mapping[str, Any]) -> Any:
    """``set(..., merge=True)``: the named fields (and transforms such as ``ArrayUnion``)
    written into the document, which is created if missing."""
    from google.cloud.firestore_v1 import _helpers

    return _library_write(_helpers.pbs_for_set_with_merge(path, data, merge=True))


def _version_stamp(version: Any) -> timestamp_pb2.Timestamp:
    if hasattr(version, "timestamp_pb"):
        stamp: timestamp_pb2.Timestamp = version.timestamp_pb()
        return stamp
    if isinstance(version, datetime):
        return _timestamp(version)
    return version
