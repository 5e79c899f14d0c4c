"""The pure core: one client's state and one event in, the resolved event and new state out.

``resolve_event`` has no I/O, no clock and no environment: ``now_micros`` is an argument.
Invariants:

- A redelivered ``event_id`` still in the client's processed record gets the identical
  ``Resolved`` and leaves the state untouched (counted once, never twice).
- Events older than the allowed lateness, or further in the future than clock skew
  explains, raise ``InvalidEvent`` (``too_late`` / ``time_in_future``); nothing changes.
- Identity is per client; sessions are per client *and* stream (GA4 keeps one session
  cookie per stream while the client id is shared).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from shared.domain.events import RawEvent
from shared.domain.identity import IdentityRules, resolve_identity
from shared.domain.sessions import SessionEvent, SessionRules, assign_session
from shared.domain.state import ClientState, ProcessedEvent, Resolved
from shared.domain.traffic import classify_landing
from shared.errors import InvalidEvent

__all__ = [
    "Resolution",
    "Rules",
    "enrich",
    "resolve_cookieless",
    "resolve_event",
]


@dataclass(frozen=True)
class Rules:
    sessions: SessionRules = field(default_factory=SessionRules)
    identity: IdentityRules = field(default_factory=IdentityRules)
    ignored_referrers: tuple[str, ...] = ()
    """Domains whose referrals never start a source (the site's other domains: partner
    checkouts, the hosts of routed streams)."""


@dataclass(frozen=True)
class Resolution:
    state: ClientState
    resolved: Resolved
    duplicate: bool
    new_link: bool
    """The event linked this client to a user for the first time."""


def check_time(event: RawEvent, rules: SessionRules, now_micros: int) -> None:
    """Refuse events GA4 would clamp (too old) or that no clock skew explains (future)."""
    age = now_micros - event.time_micros
    if age > rules.allowed_lateness_micros:
        hours = age / 3_600_000_000
        raise InvalidEvent(
            "too_late", f"event time is {hours:.1f} h old, beyond the allowed lateness"
        )
    if -age > rules.max_future_micros:
        hours = -age / 3_600_000_000
        raise InvalidEvent("time_in_future", f"event time is {hours:.1f} h in the future")


def resolve_event(
    state: ClientState | None,
    event: RawEvent,
    rules: Rules,
    now_micros: int,
    link: Mapping[str, str] | None = None,
) -> Resolution:
    """Resolve identity and session for ``event`` against ``state`` (None: a new client).

    ``event.client_id`` must be the canonical client (``state``'s); ``link`` describes the
    cross-domain alias this event created, if any, and is kept in the answer."""
    current = state or ClientState(client_id=event.client_id, first_seen_micros=event.time_micros)
    earlier = current.processed_result(event.event_id)
    if earlier is not None:
        return Resolution(state=current, resolved=earlier, duplicate=True, new_link=False)
    check_time(event, rules.sessions, now_micros)

    identity, decision = resolve_identity(
        current.identity, event.user_id, event.event_name, event.time_micros, rules.identity
    )
    stream_name = event.stream_id or ""
    stream, session = assign_session(
        current.stream(stream_name),
        SessionEvent(
            event.time_micros,
            event.event_id,
            event.campaign,
            decision.user_id,
            classify_landing(
                event.page_location, event.page_referrer, ignored_domains=rules.ignored_referrers
            ).as_dict(),
        ),
        rules.sessions,
    )
    resolved = Resolved(
        client_id=current.client_id,
        user_id=decision.user_id,
        identity_source=decision.source,
        session_id=session.session_id,
        session_number=session.session_number,
        previous_session_id=session.previous_session_id,
        event_index=session.event_index,
        first_event_id=session.first_event_id,
        session_start_micros=session.session_start_micros,
        is_new_session=session.is_new_session,
        late=session.late,
        link=link,
        new_link=decision.new_link,
        traffic_source=session.source,
        earliest_in_session=session.earliest,
    )
    others = tuple(s for s in current.streams if s.stream != stream_name)
    processed = (*current.processed, ProcessedEvent.of(event.event_id, resolved))
    updated = replace(
        current,
        identity=identity,
        streams=(*others, stream),
        processed=processed[-rules.sessions.processed_kept :],
        events=current.events + 1,
        first_seen_micros=min(current.first_seen_micros, event.time_micros),
    )
    return Resolution(state=updated, resolved=resolved, duplicate=False, new_link=decision.new_link)


def resolve_cookieless(event: RawEvent) -> Resolved:
    """``analytics_storage`` denied: no state, no user id, no session (GA4 cookieless pings)."""
    return Resolved(
        client_id=event.client_id,
        user_id=None,
        identity_source="anonymous",
        session_id=None,
        session_number=None,
        previous_session_id=None,
        event_index=None,
        first_event_id=None,
        session_start_micros=None,
        is_new_session=False,
        late=False,
    )


def enrich(
    event: RawEvent, resolved: Resolved, *, duplicate: bool, bot: bool = False
) -> dict[str, object]:
    """The enriched event: the raw payload plus ``resolved`` (see docs/contracts.md)."""
    matches = (
        None
        if event.client_session_id is None or resolved.session_id is None
        else event.client_session_id == resolved.session_id
    )
    return {
        **event.payload,
        "resolved": {
            "event_id": event.event_id,
            "event_name": event.event_name,
            "timestamp_micros": event.time_micros,
            "stream_id": event.stream_id,
            "client_id": resolved.client_id,
            "incoming_client_id": event.incoming_client_id,
            "user_id": resolved.user_id,
            "identity_source": resolved.identity_source,
            "session_id": resolved.session_id,
            "session_number": resolved.session_number,
            "previous_session_id": resolved.previous_session_id,
            "event_index": resolved.event_index,
            "first_event_id": resolved.first_event_id,
            "session_start_micros": resolved.session_start_micros,
            "is_new_session": resolved.is_new_session,
            "late": resolved.late,
            "duplicate": duplicate,
            "consent": event.consent.as_dict(),
            "client_session_id": event.client_session_id,
            "client_session_number": event.client_session_number,
            "client_session_matches": matches,
            "link": dict(resolved.link) if resolved.link else None,
            "bot": bot,
            "traffic_source": dict(resolved.traffic_source) if resolved.traffic_source else None,
            "earliest_in_session": resolved.earliest_in_session,
        },
    }
