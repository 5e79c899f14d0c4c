"""The client document's writes built as protobufs directly, for the resolver's one commit.

``WriteBatch.create`` / ``update`` walk the data to find field paths, sentinels and
transforms, then build proto-plus messages that the commit converts back to protobufs:
about a fifth of the resolve function's CPU per event (``benchmarks/profile_functions.py``)
for a document of seven flat fields. These builders produce the same ``Write`` the library
would (``tests/unit/test_firestore_writes.py`` compares them field by field) from a flat
map of the value types the state store writes: ``None``, ``bool``, ``int``, ``float``,
``str``, ``bytes`` and timezone-aware ``datetime``. Anything else (maps, arrays,
sentinels such as ``ArrayUnion``) goes through the library, as the identity links do.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.cloud.firestore_v1.types import common, document, write
from google.protobuf import timestamp_pb2

__all__ = ["FLAT_TYPES", "create_write", "is_flat", "update_write"]

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


def is_flat(data: Mapping[str, Any]) -> bool:
    """True when every value is one these builders encode and every key a plain name."""
    return all(
        (type(value) in _FIELDS or value is None or isinstance(value, datetime))
        and key.isidentifier()
        for key, value in data.items()
    )


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


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


def create_write(path: str, data: Mapping[str, Any]) -> Any:
    """``create``: the document, which must not exist yet."""
    return _WRITE(update=_document(path, data), current_document=_PRECONDITION(exists=False))


def update_write(path: str, data: Mapping[str, Any], last_update_time: Any) -> Any:
    """``update`` of the named fields, if the document was last written at
    ``last_update_time`` (a ``datetime``, or the timestamp a commit returned)."""
    stamp = last_update_time
    if isinstance(stamp, datetime):
        stamp = _timestamp(stamp)
    return _WRITE(
        update=_document(path, data),
        update_mask=_MASK(field_paths=sorted(data)),
        current_document=_PRECONDITION(update_time=stamp),
    )
