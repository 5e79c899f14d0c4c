"""``StateAdmin`` on Firestore: the operator's reads and deletes of stored state.

Only ``ga4-stitch inspect`` and ``erase`` use it; the functions never do. Document ids
come from the state store's own rules, so the operator sees the documents the
resolver writes and nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.adapters.firestore.codec import decode
from shared.adapters.firestore.errors import translated
from shared.adapters.firestore.state_store import client_document_id, user_key
from shared.ports import ClientRecord, UserRecord

__all__ = ["FirestoreStateAdmin"]


def _moment(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


class FirestoreStateAdmin:
    """The ``clients`` and ``users`` collections of one deployment (or emulator)."""

    def __init__(
        self, client: Any, clients_collection: str, users_collection: str, user_secret: str | None
    ) -> None:
        self._clients_name = clients_collection
        self._users_name = users_collection
        self._clients = client.collection(clients_collection)
        self._users = client.collection(users_collection)
        self._secret = user_secret

    def client_path(self, client_id: str) -> str:
        return f"{self._clients_name}/{client_document_id(client_id)}"

    def user_path(self, user_id: str) -> str:
        return f"{self._users_name}/{user_key(user_id, self._secret)}"

    def client_record(self, client_id: str) -> ClientRecord | None:
        with translated("read client"):
            snapshot = self._clients.document(client_document_id(client_id)).get()
        if not snapshot.exists:
            return None
        document = snapshot.to_dict()
        return ClientRecord(
            self.client_path(client_id), decode(document), _moment(document.get("expire_at"))
        )

    def user_record(self, user_id: str) -> UserRecord | None:
        with translated("read user"):
            snapshot = self._users.document(user_key(user_id, self._secret)).get()
        if not snapshot.exists:
            return None
        document = snapshot.to_dict() or {}
        return UserRecord(
            path=self.user_path(user_id),
            client_ids=tuple(str(client) for client in document.get("client_ids", [])),
            last_linked_at=_moment(document.get("last_linked_at")),
            expire_at=_moment(document.get("expire_at")),
        )

    def aliases_of(self, client_id: str) -> list[str]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._clients.where(filter=FieldFilter("alias_of", "==", client_id))
        with translated("find aliases"):
            return sorted(str(doc.to_dict().get("client_id", doc.id)) for doc in query.stream())

    def delete_client(self, client_id: str) -> bool:
        return self._delete(self._clients.document(client_document_id(client_id)))

    def delete_user(self, user_id: str) -> bool:
        return self._delete(self._users.document(user_key(user_id, self._secret)))

    @staticmethod
    def _delete(reference: Any) -> bool:
        with translated("erase"):
            existed = bool(reference.get().exists)
            reference.delete()
        return existed
