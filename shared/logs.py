"""Structured JSON logs in Cloud Logging's shape, one line per record.

Cloud Run and Cloud Functions parse a JSON line on stdout into a LogEntry: ``severity``
becomes the entry's severity, ``message`` its summary, every other key a ``jsonPayload``
field. Field names are stable because log-based metrics and alerts select on them:
``event`` (what happened: ``resolved``, ``dead_lettered``, ``forwarded``...), ``reason``
(for dead letters), ``event_id``, ``client_id``.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

__all__ = [
    "configure",
    "get_logger",
]


_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class CloudLoggingFormatter(logging.Formatter):
    """Render a record, and every ``extra=`` field, as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _RESERVED and not key.startswith("_")
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(level: str = "INFO") -> None:
    """Send ga4-stitch's records to stdout as JSON; idempotent across invocations."""
    root = logging.getLogger("ga4_stitch")
    root.setLevel(level)
    if not any(getattr(h, "_ga4_stitch", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(CloudLoggingFormatter())
        handler._ga4_stitch = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``ga4_stitch`` tree (which ``configure`` formats)."""
    return logging.getLogger(f"ga4_stitch.{name}")
