"""The state ports in memory: for running the resolver offline (the warehouse command
resolves an export in-process) and as the base of the unit tests' fakes.

Invariants: the same version preconditions as the Firestore adapters (a write against a
stale version raises ``ConcurrentUpdate`` and changes nothing), and a link token is
spent once, by one event, as ``FirestoreLinkStore`` spends it. Nothing is bounded or
expired: it lives as long as one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from shared.domain.crossdomain.bridging import BridgeCandidate
from shared.domain.state import ClientState
from shared.errors import ConcurrentUpdate
from shared.ports import Snapshot, UserLink

__all__ = ["MemoryLinkEvidence", "MemoryStateStore"]


class MemoryStateStore:
    """``ClientStateStore`` in memory; ``saves`` counts written documents."""

    def __init__(self) -> None:
        self.states: dict[str, tuple[ClientState, int]] = {}
        self.links: list[UserLink] = []
        self.saves = 0

    def load(self, client_id: str) -> Snapshot:
        if client_id not in self.states:
            return Snapshot(state=None, version=None)
        state, version = self.states[client_id]
        return Snapshot(state=state, version=version)

    def save(
        self,
        snapshot: Snapshot,
        state: ClientState,
        links: Sequence[UserLink],
        expires: datetime,
        aliases: Sequence[tuple[Snapshot, ClientState]] = (),
    ) -> None:
        writes = [(snapshot, state), *aliases]
        for read, written in writes:
            current = self.states.get(written.client_id)
            if (current[1] if current else None) != read.version:
                raise ConcurrentUpdate("stale version")
        for _, written in writes:
            self.saves += 1
            self.states[written.client_id] = (written, self.saves)
        self.links.extend(links)


class MemoryLinkEvidence:
    """``LinkEvidenceStore`` in memory: single-use link tokens and bridge candidates."""

    def __init__(self) -> None:
        self.used: dict[str, str] = {}
        self.remembered: dict[str, dict[str, BridgeCandidate]] = {}

    def use_token(self, token_id: str, event_id: str, expires_at_seconds: int) -> bool:
        return self.used.setdefault(token_id, event_id) == event_id

    def candidates(self, key: str) -> Sequence[BridgeCandidate]:
        return tuple(self.remembered.get(key, {}).values())

    def remember(self, key: str, candidate: BridgeCandidate, expires: datetime) -> None:
        self.remembered.setdefault(key, {})[candidate.client_id] = candidate
