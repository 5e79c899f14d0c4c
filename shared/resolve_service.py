"""The resolve function's service: one Pub/Sub message through decode, core, store, publish.

Order of effects, and why it makes redelivery safe: the state (with the event's id in
its processed record) is committed *before* anything is published. If publishing then
fails, the function raises, Pub/Sub redelivers, the core recognises the event id and
answers identically, and the same enriched event is published again; the forwarder
deduplicates by ``event_id``. Nothing is counted twice and nothing is lost.

Permanent problems (bad payload, too late) are dead-lettered with their reason and the
message is acknowledged; transient ones (Firestore, Pub/Sub) are retried a bounded number
of times here, then raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import ConcurrentUpdate, InvalidEvent, PermanentError
from shared.events import RawEvent, decode_raw_event
from shared.firestore_store import ClientStateStore, FirestoreStateStore, UserLink, expire_at
from shared.logs import get_logger
from shared.messages import PubSubMessage, message_from_cloud_event
from shared.pubsub import (
    OutgoingMessage,
    Publisher,
    PubSubPublisher,
    dead_letter_message,
    json_bytes,
)
from shared.resolution import Resolution, Rules, enrich, resolve_cookieless, resolve_event
from shared.retry import transient_retry
from shared.settings import Settings

log = get_logger("resolve")


def system_clock_micros() -> int:
    return time.time_ns() // 1_000


@dataclass(frozen=True)
class Outcome:
    """What happened to one message (returned for tests and the CLI; logged for operators)."""

    status: str
    """``resolved``, ``duplicate``, ``cookieless`` or ``dead_lettered``."""
    enriched: Mapping[str, Any] | None = None
    reason: str | None = None


class ResolveRuntime:
    def __init__(
        self,
        settings: Settings,
        store: ClientStateStore,
        publisher: Publisher,
        clock: Callable[[], int] = system_clock_micros,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._settings = settings
        self._rules = Rules(sessions=settings.sessions, identity=settings.identity)
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> ResolveRuntime:
        return cls(settings, FirestoreStateStore.from_settings(settings), PubSubPublisher(settings.project))

    def handle(self, data: Any, event_id: str | None = None) -> Outcome:
        """Process one CloudEvent's data; raises only ``TransientError``."""
        try:
            message = message_from_cloud_event(data, event_id)
        except InvalidEvent as error:
            envelope = PubSubMessage(json_bytes(data), event_id or "", None)
            return self._dead_letter(error, envelope)
        try:
            event = decode_raw_event(
                message.json_object(), message.message_id, message.publish_time_micros
            )
            return self.process(event)
        except PermanentError as error:
            return self._dead_letter(error, message)

    def process(self, event: RawEvent) -> Outcome:
        """Resolve a decoded event, persist, publish. Raises ``PermanentError`` or
        ``TransientError``."""
        outcome, resolution = self.resolve(event)
        messages = [self._enriched_message(outcome.enriched)] if outcome.enriched else []
        if resolution is not None:
            messages.extend(self.link_messages(event, resolution))
        self._publisher.publish_all(messages)
        return outcome

    def resolve(self, event: RawEvent) -> tuple[Outcome, Resolution | None]:
        """Resolve and persist without publishing the enriched event (the inline endpoint's
        path; ``process`` publishes). None for cookieless events, which touch no state."""
        if event.consent.analytics_denied:
            enriched = enrich(event, resolve_cookieless(event), duplicate=False)
            log.info("resolved", extra={"event": "resolved", "cookieless": True, **_ids(event)})
            return Outcome("cookieless", enriched), None
        resolution = self._resolve_and_save(event)
        enriched = enrich(event, resolution.resolved, duplicate=resolution.duplicate)
        resolved = resolution.resolved
        log.info(
            "duplicate" if resolution.duplicate else "resolved",
            extra={
                "event": "duplicate_skipped" if resolution.duplicate else "resolved",
                "new_session": resolved.is_new_session and not resolution.duplicate,
                "stitched": resolved.identity_source == "stitched",
                "new_link": resolution.new_link,
                "late": resolved.late,
                "session_id": resolved.session_id,
                **_ids(event),
            },
        )
        return Outcome("duplicate" if resolution.duplicate else "resolved", enriched), resolution

    def link_messages(self, event: RawEvent, resolution: Resolution) -> list[OutgoingMessage]:
        return [self._link_message(event, resolution)] if resolution.new_link else []

    def _resolve_and_save(self, event: RawEvent) -> Resolution:
        retrying = transient_retry(
            attempts=6, budget_seconds=30.0, logger=log, sleep=self._sleep
        )
        for attempt in retrying:
            with attempt:
                return self._resolve_once(event)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _resolve_once(self, event: RawEvent) -> Resolution:
        snapshot = self._store.load(event.client_id)
        now = self._clock()
        resolution = resolve_event(snapshot.state, event, self._rules, now)
        if resolution.duplicate:
            return resolution
        links = (
            [UserLink(resolution.resolved.user_id, event.client_id, event.time_micros)]
            if resolution.new_link and resolution.resolved.user_id
            else []
        )
        try:
            self._store.save(
                snapshot, resolution.state, links, expire_at(now, self._settings.ttl_micros)
            )
        except ConcurrentUpdate:
            self._store.forget(event.client_id)
            raise
        return resolution

    def _enriched_message(self, enriched: Mapping[str, Any]) -> OutgoingMessage:
        resolved = enriched["resolved"]
        attributes = {
            "client_id": resolved["client_id"],
            "event_name": resolved["event_name"],
            "event_id": resolved["event_id"],
            "stream_id": resolved["stream_id"] or "",
            "session_id": "" if resolved["session_id"] is None else str(resolved["session_id"]),
        }
        return OutgoingMessage(
            topic=self._settings.topics.enriched,
            data=json_bytes(enriched),
            ordering_key=resolved["client_id"],
            attributes=attributes,
        )

    def _link_message(self, event: RawEvent, resolution: Resolution) -> OutgoingMessage:
        state = resolution.state
        body = {
            "client_id": state.client_id,
            "user_id": resolution.resolved.user_id,
            "linked_at_micros": event.time_micros,
            "first_seen_micros": state.first_seen_micros,
            "link_kind": "login",
            "event_id": event.event_id,
            "stream_id": event.stream_id,
        }
        return OutgoingMessage(
            topic=self._settings.topics.identity_links,
            data=json_bytes(body),
            ordering_key=state.client_id,
            attributes={"client_id": state.client_id, "link_kind": "login"},
        )

    def _dead_letter(self, error: PermanentError, message: PubSubMessage) -> Outcome:
        topic = self._settings.topics.resolve_dead_letter
        self._publisher.publish_all([dead_letter_message(topic, error, message, "resolve")])
        log.warning(
            "dead-lettered: %s",
            error.detail,
            extra={
                "event": "dead_lettered",
                "reason": error.reason,
                "source": "resolve",
                "message_id": message.message_id,
            },
        )
        return Outcome("dead_lettered", reason=error.reason)


def _ids(event: RawEvent) -> dict[str, Any]:
    return {"event_id": event.event_id, "client_id": event.client_id}
