"""``ga4-stitch inspect``: the reports of ``shared.services.inspect`` rendered for a terminal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
