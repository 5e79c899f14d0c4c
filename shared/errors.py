"""The one exception tree of ga4-stitch.

::

    StitchError
    ├── PermanentError        the message can never succeed: dead-letter it, then acknowledge
    │   └── InvalidEvent      the payload breaks the raw-event or enriched-event contract
    ├── TransientError        retrying may succeed: raise so Pub/Sub redelivers
    │   └── ConcurrentUpdate  another writer changed the state between our read and write
    └── SettingsError         the deployment is misconfigured: fail at start-up, loudly

Adapters translate library errors into this tree at their boundary
(``raise TransientError(...) from exc``) so services never see a gRPC or HTTP type.
Every ``PermanentError`` carries a stable machine ``reason`` (snake_case, used as a log
field, a metric label and the dead-letter attribute) and a human ``detail``.
"""

from __future__ import annotations

__all__ = [
    "ConcurrentUpdate",
    "InvalidEvent",
    "PermanentError",
    "SettingsError",
    "StitchError",
    "TransientError",
]


class StitchError(Exception):
    """Base of every error ga4-stitch raises on purpose."""


class PermanentError(StitchError):
    """Processing this message again cannot succeed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidEvent(PermanentError):
    """The event breaks its contract; ``reason`` names the broken rule."""


class TransientError(StitchError):
    """A dependency failed in a way that a later attempt may not."""


class ConcurrentUpdate(TransientError):
    """The stored state changed under us; re-read and decide again."""


class SettingsError(StitchError):
    """An environment variable is missing or out of range."""
