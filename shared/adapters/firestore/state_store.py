"""Client and user state in Firestore, with optimistic concurrency and an instance cache.

Cost per event in the common case is one RPC: the instance remembers the document and
the ``update_time`` it last wrote for a client, and commits the next state with an
``update_time`` precondition. The cache holds documents in their stored, compressed form
(about 2.5 kB a client, against some 70 kB decoded), so a large cache fits a small
instance; decoding one on a hit costs a fraction of a millisecond, far less than a read.
A cache miss adds one ``get`` (two RPCs). When another instance or a concurrent delivery
wrote first, the precondition fails, the cache entry is dropped and the caller decides
again on fresh state (``ConcurrentUpdate``). So concurrent deliveries for one client can
never open two sessions or lose an update, without the three RPCs (begin, read, commit)
and pessimistic locks of a transaction.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.domain.crossdomain.bridging import BridgeCandidate
from shared.errors import ConcurrentUpdate, TransientError
from shared.settings import Settings
from shared.domain.state import ClientState, from_document, to_document

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


def expire_at(now_micros: int, ttl_micros: int) -> datetime:
    return datetime.fromtimestamp((now_micros + ttl_micros) / 1_000_000, tz=UTC)


@dataclass(frozen=True)
class Snapshot:
    """A client's state as read, with the version a write must still match."""

    state: ClientState | None
    version: Any
    """Firestore ``update_time`` (None: the document did not exist)."""


@dataclass(frozen=True)
class UserLink:
    user_id: str
    client_id: str
    linked_at_micros: int


class ClientStateStore(Protocol):
    def load(self, client_id: str) -> Snapshot: ...

    def save(
        self,
        snapshot: Snapshot,
        state: ClientState,
        links: Sequence[UserLink],
        expires: datetime,
        aliases: Sequence[tuple[Snapshot, ClientState]] = (),
    ) -> None:
        """Write ``state`` if the document is still at ``snapshot.version``, else raise
        ``ConcurrentUpdate`` (after dropping any cached copy, so the next ``load`` reads
        the store); links update the users' documents and ``aliases`` (a second domain's
        client now pointing at this one) their own, all in the same commit."""


@contextmanager
def translated_errors() -> Iterator[None]:
    """Map google-api-core errors to our tree: contention -> ``ConcurrentUpdate``,
    availability -> ``TransientError``."""
    from google.api_core import exceptions as gexc

    try:
        yield
    except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.NotFound, gexc.Conflict) as exc:
        raise ConcurrentUpdate(f"state changed concurrently: {exc.message}") from exc
    except (
        gexc.ServiceUnavailable,
        gexc.DeadlineExceeded,
        gexc.InternalServerError,
        gexc.ResourceExhausted,
        gexc.Unknown,
        gexc.Cancelled,
        gexc.RetryError,
    ) as exc:
        raise TransientError(f"Firestore unavailable: {exc}") from exc


def firestore_client(settings: Settings) -> Any:
    from google.cloud import firestore

    return firestore.Client(project=settings.project, database=settings.database)


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
        self._client = client
        self._clients = client.collection(clients_collection)
        self._users = client.collection(users_collection)
        self._user_secret = user_secret
        self._cache: OrderedDict[str, tuple[dict[str, Any], Any]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, client: Any | None = None) -> FirestoreStateStore:
        return cls(
            client or firestore_client(settings),
            clients_collection=settings.collection("clients"),
            users_collection=settings.collection("users"),
            user_secret=settings.privacy.pii_hash_secret,
        )

    def load(self, client_id: str) -> Snapshot:
        with self._cache_lock:
            cached = self._cache.get(client_id)
            if cached is not None:
                self._cache.move_to_end(client_id)
        if cached is not None:
            document, version = cached
            return Snapshot(state=from_document(document), version=version)
        with translated_errors():
            document = self._clients.document(client_document_id(client_id)).get()
        if not document.exists:
            return Snapshot(state=None, version=None)
        return Snapshot(state=from_document(document.to_dict()), version=document.update_time)

    def save(
        self,
        snapshot: Snapshot,
        state: ClientState,
        links: Sequence[UserLink],
        expires: datetime,
        aliases: Sequence[tuple[Snapshot, ClientState]] = (),
    ) -> None:
        batch = self._client.batch()
        written = [(snapshot, state), *aliases]
        documents = [self._write(batch, old, new, expires) for old, new in written]
        for link in links:
            self._add_link(batch, link, expires)
        try:
            with translated_errors():
                results = batch.commit()
        except ConcurrentUpdate:
            for _, new in written:
                self._forget(new.client_id)
            raise
        for (_, new), document, result in zip(written, documents, results, strict=False):
            self._remember(new.client_id, document, result.update_time)

    def _write(
        self, batch: Any, snapshot: Snapshot, state: ClientState, expires: datetime
    ) -> dict[str, Any]:
        reference = self._clients.document(client_document_id(state.client_id))
        document = to_document(state)
        data = {**document, "expire_at": expires}
        if snapshot.version is None:
            batch.create(reference, data)
        else:
            option = self._client.write_option(last_update_time=snapshot.version)
            batch.update(reference, data, option=option)
        return document

    def _add_link(self, batch: Any, link: UserLink, expires: datetime) -> None:
        from google.cloud import firestore

        reference = self._users.document(user_key(link.user_id, self._user_secret))
        linked_at = datetime.fromtimestamp(link.linked_at_micros / 1_000_000, tz=UTC)
        batch.set(
            reference,
            {
                "client_ids": firestore.ArrayUnion([link.client_id]),
                "last_linked_at": linked_at,
                "expire_at": expires,
            },
            merge=True,
        )

    def _forget(self, client_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(client_id, None)

    def _remember(self, client_id: str, document: dict[str, Any], version: Any) -> None:
        """Cache what was written, unless a later write of this client is cached already
        (two commits finishing in the other order must not bring back the older one)."""
        with self._cache_lock:
            cached = self._cache.get(client_id)
            if cached is not None and cached[1] is not None and version < cached[1]:
                return
            self._cache[client_id] = (document, version)
            self._cache.move_to_end(client_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    @property
    def cached_clients(self) -> int:
        return len(self._cache)


class FirestoreLinkStore:
    """``LinkEvidenceStore`` on Firestore: single-use token markers and bridge candidates.

    A token marker is created with an exists=False precondition, so two events can never
    both spend one token; the marker names the event that spent it, so that event's own
    redelivery is not mistaken for a replay. Candidates are a map per fingerprint key
    (one write per partner-domain event, merged without a read).
    """

    def __init__(self, client: Any, tokens_collection: str, candidates_collection: str) -> None:
        self._tokens = client.collection(tokens_collection)
        self._candidates = client.collection(candidates_collection)

    @classmethod
    def from_settings(cls, settings: Settings, client: Any) -> FirestoreLinkStore:
        return cls(
            client, settings.collection("link_tokens"), settings.collection("bridge_candidates")
        )

    def use_token(self, token_id: str, event_id: str, expires_at_seconds: int) -> bool:
        from google.api_core import exceptions as gexc

        reference = self._tokens.document(token_id)
        expires = datetime.fromtimestamp(expires_at_seconds + 86_400, tz=UTC)
        try:
            with translated_errors():
                reference.create({"event_id": event_id, "expire_at": expires})
        except ConcurrentUpdate as exc:
            if not isinstance(exc.__cause__, gexc.AlreadyExists | gexc.Conflict):
                raise
            with translated_errors():
                spent = reference.get()
            return bool(spent.exists and spent.get("event_id") == event_id)
        return True

    def candidates(self, key: str) -> list[BridgeCandidate]:
        with translated_errors():
            document = self._candidates.document(key).get()
        if not document.exists:
            return []
        entries = (document.to_dict() or {}).get("clients", {})
        return [BridgeCandidate(**entry) for entry in entries.values()]

    def remember(self, key: str, candidate: BridgeCandidate, expires: datetime) -> None:
        entry_key = hashlib.sha256(candidate.client_id.encode()).hexdigest()[:24]
        with translated_errors():
            self._candidates.document(key).set(
                {"clients": {entry_key: asdict(candidate)}, "expire_at": expires}, merge=True
            )
