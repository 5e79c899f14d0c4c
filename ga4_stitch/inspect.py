"""Read or erase the identity and session state stored for one client or one user.

``client_report`` and ``user_report`` return plain JSON-ready dicts (times as ISO 8601
UTC); ``format_report`` renders them for a terminal. ``erase_user`` is the GDPR erasure:
the user's document, every client it lists, and every client aliased to one of those (a
checkout domain's client after a cross-domain link), each named in the returned
``Erasure``. The ``forwarded`` ledger is left alone: it holds event ids only, no user or
client id, expires after 8 days, and deleting it would let a redelivery reach GA4 twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.adapters.firestore.state_store import client_document_id, user_key
from shared.settings import Settings
from shared.domain.state import ClientState, from_document


def iso(micros: int | None) -> str | None:
    if micros is None:
        return None
    moment = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _iso_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return value


class StateReader:
    """The ``clients`` and ``users`` collections of one deployment (or emulator)."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self._client = client
        self._clients = client.collection(settings.collection("clients"))
        self._users = client.collection(settings.collection("users"))
        self._clients_name = settings.collection("clients")
        self._users_name = settings.collection("users")
        self._secret = settings.privacy.pii_hash_secret

    def user_path(self, user_id: str) -> str:
        return f"{self._users_name}/{user_key(user_id, self._secret)}"

    def client_path(self, client_id: str) -> str:
        return f"{self._clients_name}/{client_document_id(client_id)}"

    def client_document(self, client_id: str) -> dict[str, Any] | None:
        snapshot = self._clients.document(client_document_id(client_id)).get()
        return snapshot.to_dict() if snapshot.exists else None

    def user_document(self, user_id: str) -> dict[str, Any] | None:
        snapshot = self._users.document(user_key(user_id, self._secret)).get()
        return snapshot.to_dict() if snapshot.exists else None

    def aliases_of(self, client_id: str) -> list[str]:
        """Clients (of other domains) whose state points at ``client_id``."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._clients.where(filter=FieldFilter("alias_of", "==", client_id))
        return sorted(str(doc.to_dict().get("client_id", doc.id)) for doc in query.stream())

    def delete_client(self, client_id: str) -> bool:
        reference = self._clients.document(client_document_id(client_id))
        existed = bool(reference.get().exists)
        reference.delete()
        return existed

    def delete_user(self, user_id: str) -> bool:
        reference = self._users.document(user_key(user_id, self._secret))
        existed = bool(reference.get().exists)
        reference.delete()
        return existed


# --------------------------------------------------------------------------- reports


def _state_report(state: ClientState) -> dict[str, Any]:
    processed = state.processed
    return {
        "first_seen": iso(state.first_seen_micros),
        "events": state.events,
        "alias_of": state.alias_of,
        "identity": {
            "linked_users": list(state.identity.linked_users),
            "current_user": state.identity.current_user,
            "marks": [
                {"at": iso(mark.time_micros), "user_id": mark.user_id}
                for mark in state.identity.marks
            ],
        },
        "streams": [
            {
                "stream": stream.stream,
                "sessions": stream.count,
                "last_activity": iso(stream.last_activity_micros),
                "windows": [
                    {
                        "session_id": window.session_id,
                        "session_number": window.number,
                        "start": iso(window.start_micros),
                        "last": iso(window.last_micros),
                        "events": window.events,
                        "first_event_id": window.first_event_id,
                        "previous_session_id": window.previous_session_id,
                    }
                    for window in stream.windows
                ],
            }
            for stream in state.streams
        ],
        "recent_event_ids": len(processed),
        "latest_event_id": processed[-1].event_id if processed else None,
    }


def client_report(reader: StateReader, client_id: str) -> dict[str, Any]:
    """What is stored for ``client_id``; ``found`` is false when nothing is."""
    document = reader.client_document(client_id)
    report: dict[str, Any] = {
        "client_id": client_id,
        "document": reader.client_path(client_id),
        "found": document is not None,
    }
    if document is None:
        return report
    report.update(_state_report(from_document(document)))
    report["aliases"] = reader.aliases_of(client_id)
    report["expire_at"] = _iso_value(document.get("expire_at"))
    return report


def user_report(reader: StateReader, user_id: str) -> dict[str, Any]:
    """The user's document and a report of each client it lists."""
    document = reader.user_document(user_id)
    report: dict[str, Any] = {
        "user_id": user_id,
        "document": reader.user_path(user_id),
        "found": document is not None,
    }
    if document is None:
        return report
    clients = [str(client) for client in document.get("client_ids", [])]
    report.update(
        {
            "client_ids": clients,
            "last_linked_at": _iso_value(document.get("last_linked_at")),
            "expire_at": _iso_value(document.get("expire_at")),
            "clients": [client_report(reader, client) for client in clients],
        }
    )
    return report


def _client_lines(report: Mapping[str, Any], indent: str = "") -> list[str]:
    head = f"{indent}client {report['client_id']}  ({report['document']})"
    if not report["found"]:
        return [f"{head}: nothing stored"]
    identity = report["identity"]
    lines = [
        head,
        f"{indent}  first seen       {report['first_seen']}",
        f"{indent}  events           {report['events']}",
        f"{indent}  alias of         {report['alias_of'] or '-'}",
        f"{indent}  aliases          {', '.join(report['aliases']) or '-'}",
        f"{indent}  expires          {report['expire_at'] or '-'}",
        f"{indent}  linked users     {', '.join(identity['linked_users']) or '-'}",
        f"{indent}  current user     {identity['current_user'] or '-'}",
    ]
    for mark in identity["marks"]:
        what = f"login {mark['user_id']}" if mark["user_id"] else "logout"
        lines.append(f"{indent}    {mark['at']}  {what}")
    for stream in report["streams"]:
        lines.append(
            f"{indent}  stream {stream['stream']}: {stream['sessions']} sessions, "
            f"last activity {stream['last_activity']}"
        )
        lines.extend(
            f"{indent}    #{window['session_number']:<3} session_id {window['session_id']}"
            f"  {window['start']} .. {window['last']}  {window['events']} events"
            f"  first {window['first_event_id']}"
            for window in stream["windows"]
        )
    lines.append(
        f"{indent}  recent event ids {report['recent_event_ids']} remembered"
        f" (latest {report['latest_event_id'] or '-'})"
    )
    return lines


def format_report(report: Mapping[str, Any]) -> str:
    """A client or user report as aligned, readable lines."""
    if "client_id" in report:
        return "\n".join(_client_lines(report))
    head = f"user {report['user_id']}  ({report['document']})"
    if not report["found"]:
        return f"{head}: nothing stored"
    lines = [
        head,
        f"  linked clients   {len(report['client_ids'])}: {', '.join(report['client_ids'])}",
        f"  last linked at   {report['last_linked_at'] or '-'}",
        f"  expires          {report['expire_at'] or '-'}",
    ]
    for client in report["clients"]:
        lines.extend(_client_lines(client, indent="  "))
    return "\n".join(lines)


# --------------------------------------------------------------------------- erasure


@dataclass
class Erasure:
    deleted: list[str] = field(default_factory=list)
    """Document paths that existed and were deleted."""
    absent: list[str] = field(default_factory=list)
    """Document paths named by the request that held nothing."""

    def record(self, path: str, existed: bool) -> None:
        (self.deleted if existed else self.absent).append(path)


def erase_client(reader: StateReader, client_id: str, erasure: Erasure | None = None) -> Erasure:
    """Delete a client's state and that of every client aliased to it."""
    result = erasure or Erasure()
    for client in [client_id, *reader.aliases_of(client_id)]:
        path = reader.client_path(client)
        if path not in result.deleted and path not in result.absent:
            result.record(path, reader.delete_client(client))
    return result


def erase_user(reader: StateReader, user_id: str) -> Erasure:
    """Delete a user's document, and the state of every client it lists (with aliases)."""
    result = Erasure()
    document = reader.user_document(user_id) or {}
    for client in document.get("client_ids", []):
        erase_client(reader, str(client), result)
    result.record(reader.user_path(user_id), reader.delete_user(user_id))
    return result
