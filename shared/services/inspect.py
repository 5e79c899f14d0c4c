"""What is stored for one client or one user, as plain JSON-ready reports.

Times are ISO 8601 UTC; ``found`` says whether anything is stored. Reads go through the
``StateAdmin`` port, so the report shows the state exactly as the resolver decoded it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.domain.state import ClientState
from shared.ports import StateAdmin

__all__ = ["client_report", "iso", "user_report"]


def iso(micros: int | None) -> str | None:
    if micros is None:
        return None
    moment = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _iso_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return value


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


def client_report(admin: StateAdmin, client_id: str) -> dict[str, Any]:
    """What is stored for ``client_id``; ``found`` is false when nothing is."""
    record = admin.client_record(client_id)
    report: dict[str, Any] = {
        "client_id": client_id,
        "document": admin.client_path(client_id),
        "found": record is not None,
    }
    if record is None:
        return report
    report.update(_state_report(record.state))
    report["aliases"] = admin.aliases_of(client_id)
    report["expire_at"] = _iso_value(record.expire_at)
    return report


def user_report(admin: StateAdmin, user_id: str) -> dict[str, Any]:
    """The user's document and a report of each client it lists."""
    record = admin.user_record(user_id)
    report: dict[str, Any] = {
        "user_id": user_id,
        "document": admin.user_path(user_id),
        "found": record is not None,
    }
    if record is None:
        return report
    clients = list(record.client_ids)
    report.update(
        {
            "client_ids": clients,
            "last_linked_at": _iso_value(record.last_linked_at),
            "expire_at": _iso_value(record.expire_at),
            "clients": [client_report(admin, client) for client in clients],
        }
    )
    return report
