"""GDPR erasure: a user's document, every client it lists, and every client aliased to one.

A checkout domain's client after a cross-domain link is an alias, so it is erased with
the client it points at; each deleted or absent document is named in the ``Erasure``.
The forward ledger is left alone: it holds event ids only, no user or client id, expires
after 8 days, and deleting it would let a redelivery reach GA4 twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.ports import StateAdmin

__all__ = ["Erasure", "erase_client", "erase_user"]


@dataclass
class Erasure:
    deleted: list[str] = field(default_factory=list)
    """Document paths that existed and were deleted."""
    absent: list[str] = field(default_factory=list)
    """Document paths named by the request that held nothing."""

    def record(self, path: str, existed: bool) -> None:
        (self.deleted if existed else self.absent).append(path)


def erase_client(admin: StateAdmin, client_id: str, erasure: Erasure | None = None) -> Erasure:
    """Delete a client's state and that of every client aliased to it."""
    result = erasure or Erasure()
    for client in [client_id, *admin.aliases_of(client_id)]:
        path = admin.client_path(client)
        if path not in result.deleted and path not in result.absent:
            result.record(path, admin.delete_client(client))
    return result


def erase_user(admin: StateAdmin, user_id: str) -> Erasure:
    """Delete a user's document, and the state of every client it lists (with aliases)."""
    result = Erasure()
    record = admin.user_record(user_id)
    for client in record.client_ids if record else ():
        erase_client(admin, client, result)
    result.record(admin.user_path(user_id), admin.delete_user(user_id))
    return result
