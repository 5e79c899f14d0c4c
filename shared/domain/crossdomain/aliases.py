"""Which stored client an event is resolved on: its own, or the canonical one it aliases.

Invariants: an alias points at a canonical client that is not itself an alias (a claim
on an alias follows it one step to its canonical client), and no client ever becomes its
own alias, directly or through a cycle: such a claim is refused and the event stays on
its own client. An event its own client already answered stays there, even when the
client was aliased since, so a redelivery from before the link is still a duplicate.
"""

from __future__ import annotations

from dataclasses import replace

from shared.domain.state import ClientState

__all__ = ["alias_state", "canonical_for_claim", "resolved_on"]


def resolved_on(own: ClientState | None, event_id: str) -> str | None:
    """The canonical client an event of ``own`` is resolved on without new evidence:
    None for the client itself (new, unaliased, or the event's earlier answer is here)."""
    if own is None or own.processed_result(event_id) is not None:
        return None
    return own.alias_of


def canonical_for_claim(
    client_id: str, claimed: str, claimed_state: ClientState | None
) -> str | None:
    """The canonical client a claim on ``claimed`` links ``client_id`` to, following
    ``claimed``'s own alias; None when the link would close a cycle."""
    canonical = claimed_state.alias_of if claimed_state and claimed_state.alias_of else claimed
    return None if canonical == client_id else canonical


def alias_state(
    own: ClientState | None, client_id: str, first_seen_micros: int, canonical: str
) -> ClientState:
    """``own`` (or a new client) now pointing at ``canonical``."""
    base = own or ClientState(client_id=client_id, first_seen_micros=first_seen_micros)
    return replace(base, alias_of=canonical)
