"""A document's size as Firestore counts it (the 1 MiB limit and storage billing).

From Firestore's storage size rules: a string is its UTF-8 bytes + 1; integers, floats
and timestamps 8; booleans and null 1; bytes their length; an array the sum of its
values; a map the sum of its keys (as strings) and values; a document its name (each
path segment's string size, + 16) plus its fields, + 32.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any


def _string(text: str) -> int:
    return len(text.encode()) + 1


def value_size(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float | datetime.datetime):
        return 8
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, Mapping):
        return sum(_string(str(key)) + value_size(item) for key, item in value.items())
    if isinstance(value, Sequence):
        return sum(value_size(item) for item in value)
    raise TypeError(f"no Firestore size for {type(value).__name__}")


def document_size(path: Sequence[str], fields: Mapping[str, Any]) -> int:
    """``path``: collection and document ids, alternating, from the root."""
    name = sum(_string(segment) for segment in path) + 16
    return name + value_size(fields) + 32
