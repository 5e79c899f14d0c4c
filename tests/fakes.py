"""Hand-written fakes of ga4-stitch's own interfaces, shared by the unit tests.

Each fake keeps the contract of its interface (``ClientStateStore``,
``LinkEvidenceStore``, ``Publisher``), including the failure modes the services must
handle, so a service test exercises the same paths as the emulator-backed adapters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.adapters.memory import MemoryStateStore
from shared.domain.crossdomain.bridging import BridgeCandidate
from shared.domain.messages import OutgoingMessage
from shared.domain.state import ClientState
from shared.errors import ConcurrentUpdate, TransientError
from shared.ports import Snapshot, UserLink


class FakeStateStore(MemoryStateStore):
    """The in-memory store, plus the failures the services must handle: an outage
    (``unavailable``) and writes that lose a race (``conflicts_to_raise``)."""

    def __init__(self) -> None:
        super().__init__()
        self.unavailable = False
        self.conflicts_to_raise = 0

    def load(self, client_id: str) -> Snapshot:
        if self.unavailable:
            raise TransientError("Firestore unavailable")
        return super().load(client_id)

    def save(
        self,
        snapshot: Snapshot,
        state: ClientState,
        links: Sequence[UserLink],
        expires: datetime,
        aliases: Sequence[tuple[Snapshot, ClientState]] = (),
    ) -> None:
        if self.conflicts_to_raise:
            self.conflicts_to_raise -= 1
            raise ConcurrentUpdate("someone else wrote first")
        super().save(snapshot, state, links, expires, aliases)


class FakeLinkEvidence:
    """``LinkEvidenceStore`` in memory: single-use token markers, no bridge candidates."""

    def __init__(self) -> None:
        self.used: dict[str, str] = {}

    def use_token(self, token_id: str, event_id: str, expires_at_seconds: int) -> bool:
        return self.used.setdefault(token_id, event_id) == event_id

    def candidates(self, key: str) -> Sequence[BridgeCandidate]:
        return ()

    def remember(self, key: str, candidate: BridgeCandidate, expires: datetime) -> None:
        """Bridging is off where this fake is used."""


class FakePublisher:
    """``Publisher`` that records; ``failures`` publishes fail first (transiently)."""

    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []
        self.failures = 0

    @property
    def fail(self) -> bool:
        return self.failures > 0

    @fail.setter
    def fail(self, value: bool) -> None:
        self.failures = 10**9 if value else 0

    def publish_all(self, messages: Sequence[OutgoingMessage]) -> None:
        if self.failures:
            self.failures -= 1
            raise TransientError("publish failed")
        self.messages.extend(messages)

    def on(self, topic: str) -> list[dict[str, Any]]:
        """The JSON bodies published to ``topic``."""
        return [json.loads(m.data) for m in self.messages if m.topic == topic]

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(message.data) for message in self.messages]
