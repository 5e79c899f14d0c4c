"""Cross-domain link evidence in Firestore: single-use token markers and bridge candidates.

A token marker is created with an exists=False precondition, so two events can never
both spend one token; the marker names the event that spent it, so that event's own
redelivery is not mistaken for a replay. Candidates are a map per fingerprint key (one
write per partner-domain event, merged without a read).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from shared.adapters.firestore.errors import DocumentExists, translated
from shared.domain.crossdomain.bridging import BridgeCandidate

__all__ = ["FirestoreLinkStore"]


class FirestoreLinkStore:
    """``LinkEvidenceStore`` on Firestore."""

    def __init__(self, client: Any, tokens_collection: str, candidates_collection: str) -> None:
        self._tokens = client.collection(tokens_collection)
        self._candidates = client.collection(candidates_collection)

    def use_token(self, token_id: str, event_id: str, expires_at_seconds: int) -> bool:
        reference = self._tokens.document(token_id)
        expires = datetime.fromtimestamp(expires_at_seconds + 86_400, tz=UTC)
        try:
            with translated("spend link token"):
                reference.create({"event_id": event_id, "expire_at": expires})
        except DocumentExists:
            with translated("read link token"):
                spent = reference.get()
            return bool(spent.exists and spent.get("event_id") == event_id)
        return True

    def candidates(self, key: str) -> list[BridgeCandidate]:
        with translated("read bridge candidates"):
            document = self._candidates.document(key).get()
        if not document.exists:
            return []
        entries = (document.to_dict() or {}).get("clients", {})
        return [BridgeCandidate(**entry) for entry in entries.values()]

    def remember(self, key: str, candidate: BridgeCandidate, expires: datetime) -> None:
        entry_key = hashlib.sha256(candidate.client_id.encode()).hexdigest()[:24]
        with translated("remember bridge candidate"):
            self._candidates.document(key).set(
                {"clients": {entry_key: asdict(candidate)}, "expire_at": expires}, merge=True
            )
