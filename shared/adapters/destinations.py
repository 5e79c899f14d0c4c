"""``Ga4Sender`` that sends each stream through the API its destination names.

The forwarder keeps one sender; this one hands each request to the Measurement
Protocol sender or the Data Manager API sender by the stream's measurement id, as
``DestinationPlan`` (``GA4_DESTINATION``, ``GA4_STREAM_DESTINATIONS``) decides. Invariant:
a stream's destination is fixed for the life of the instance, so the ledger's entries
(per measurement id and event id) mean the same whichever API carried the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.domain.datamanager import DestinationPlan
from shared.errors import SettingsError
from shared.ports import Ga4Sender

__all__ = ["DestinationRouter"]


class DestinationRouter:
    """Routes ``send`` and ``validate_remote`` by measurement id to one sender per
    destination name; a destination without a sender is a ``SettingsError`` at start."""

    def __init__(self, plan: DestinationPlan, senders: Mapping[str, Ga4Sender]) -> None:
        needed = {
            name
            for name, used in (
                ("measurement_protocol", plan.uses_measurement_protocol),
                ("data_manager", plan.uses_data_manager),
            )
            if used
        }
        missing = sorted(needed - set(senders))
        if missing:
            raise SettingsError(f"no sender for the destinations {', '.join(missing)}")
        self._plan = plan
        self._senders = dict(senders)

    def sender_for(self, measurement_id: str) -> Ga4Sender:
        name = self._plan.destination_of(measurement_id)
        try:
            return self._senders[name]
        except KeyError:
            raise SettingsError(f"no sender for destination {name}") from None

    def send(self, measurement_id: str, body: bytes, event_id: str | None = None) -> None:
        self.sender_for(measurement_id).send(measurement_id, body, event_id=event_id)

    def validate_remote(self, measurement_id: str, body: bytes) -> list[dict[str, Any]]:
        return self.sender_for(measurement_id).validate_remote(measurement_id, body)
