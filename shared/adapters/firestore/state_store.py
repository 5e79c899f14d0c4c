"""Client and user state in Firestore, with optimistic concurrency and an instance cache.

Cost per event in the common case is one RPC: the instance remembers the document and the
``update_time`` it last wrote for a client, and commits the next state with an
``update_time`` precondition (reads and commits are raw protobuf RPCs:
``documents.DocumentService``). The cache holds documents in their stored, compressed form
(about 2.5 kB a client, against some 70 kB decoded), so a large cache fits a small
instance; decoding one on a hit costs a fraction of a millisecond, far less than a read. A
cache miss adds one read (two RPCs; concurrent misses share a ``BatchGetDocuments``). When
another instance or a concurrent delivery wrote first, the precondition fails, the cache
entry is dropped and the caller decides again on fresh state (``ConcurrentUpdate``). So
concurrent deliveries for one client can never open two sessions or lose an update,
without the three RPCs (begin, read, commit) and pessimistic locks of a transaction.

Document ids: Firestore forbids ``/`` and ``__.*__`` ids, and server-managed client ids
contain ``/``. A numeric client id is its own id; anything else becomes ``s_`` + URL-safe
base64 (reversible, still readable in the console). User ids never appear raw in an id:
``u_`` + HMAC-SHA256 (keyed by the PII secret when set).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.adapters.firestore.codec import decode, encode
from shared.adapters.firestore.documents import DocumentService, field_values, version_order
from shared.adapters.firestore.errors import translated
from shared.adapters.firestore.writes import create_write, merge_write, update_write
from shared.domain.state import ClientState
from shared.errors import ConcurrentUpdate
from shared.ports import Snapshot, UserLink

__all__ = ["FirestoreStateStore", "client_document_id", "user_key"]

_PLAIN_ID = re.compile(r"^\d{1,20}\.\d{1,20}$")


def client_document_id(client_id: str) -> str:
    if _PLAIN_ID.match(client_id):
        return client_id
    encoded = base64.urlsafe_b64encode(client_id.encode()).decode().rstrip("=")
    return f"s_{encoded}"


def user_key(user_id: str, secret: str | None) -> str:
    """The pseudonymous key of a user: stable, one-way, and never the raw id."""
    digest = hmac.new((secret or "ga4-stitch").encode(), user_id.encode(), hashlib.sha256)
    return f"u_{digest.hexdigest()}"


class FirestoreStateStore:
    """``ClientStateStore`` on Firestore; see the module docstring for the cost model."""

    def __init__(
        self,
        client: Any,
        clients_collection: str = "clients",
        users_collection: str = "users",
        user_secret: str | None = None,
        cache_size: int = 10_000,
    ) -> None:
        self._documents = DocumentService(client)
        self._clients = clients_collection
        self._users = users_collection
        self._user_secret = user_secret
        self._cache: OrderedDict[str, tuple[dict[str, Any], Any]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    def load(self, client_id: str) -> Snapshot:
        with self._cache_lock:
            cached = self._cache.get(client_id)
            if cached is not None:
                self._cache.move_to_end(client_id)
        if cached is not None:
            document, version = cached
            return Snapshot(state=decode(document), version=version)
        path = self._documents.path(self._clients, client_document_id(client_id))
        with translated("load client"):
            stored = self._documents.get(path)
        if stored is None:
            return Snapshot(state=None, version=None)
        return Snapshot(state=decode(field_values(stored)), version=stored.update_time)

    def save(
        self,
        snapshot: Snapshot,
        state: ClientState,
        links: Sequence[UserLink],
        expires: datetime,
        aliases: Sequence[tuple[Snapshot, ClientState]] = (),
    ) -> None:
        written = [(snapshot, state), *aliases]
        documents = [encode(new) for _, new in written]
        writes = [
            self._write(old, new, document, expires)
            for (old, new), document in zip(written, documents, strict=True)
        ]
        writes.extend(self._link_write(link, expires) for link in links)
        try:
            with translated("save client"):
                results = (
                    [self._documents.write(writes[0])]
                    if len(writes) == 1
                    else self._documents.commit(writes)
                )
        except ConcurrentUpdate:
            for _, new in written:
                self._forget(new.client_id)
            raise
        for (_, new), document, result in zip(written, documents, results, strict=False):
            self._remember(new.client_id, document, result.update_time)

    def _write(
        self, snapshot: Snapshot, state: ClientState, document: dict[str, Any], expires: datetime
    ) -> Any:
        path = self._documents.path(self._clients, client_document_id(state.client_id))
        data = {**document, "expire_at": expires}
        if snapshot.version is None:
            return create_write(path, data)
        return update_write(path, data, snapshot.version)

    def _link_write(self, link: UserLink, expires: datetime) -> Any:
        """The user's document gains the client id (``ArrayUnion``), created if missing."""
        from google.cloud import firestore

        path = self._documents.path(self._users, user_key(link.user_id, self._user_secret))
        linked_at = datetime.fromtimestamp(link.linked_at_micros / 1_000_000, tz=UTC)
        return merge_write(
            path,
            {
                "client_ids": firestore.ArrayUnion([link.client_id]),
                "last_linked_at": linked_at,
                "expire_at": expires,
            },
        )

    def _forget(self, client_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(client_id, None)

    def _remember(self, client_id: str, document: dict[str, Any], version: Any) -> None:
        """Cache what was written, unless a later write of this client is cached already
        (two commits finishing in the other order must not bring back the older one)."""
        with self._cache_lock:
            cached = self._cache.get(client_id)
            if (
                cached is not None
                and cached[1] is not None
                and version_order(version) < version_order(cached[1])
            ):
                return
            self._cache[client_id] = (document, version)
            self._cache.move_to_end(client_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    @property
    def cached_clients(self) -> int:
        return len(self._cache)
