"""The resolve function's service: one Pub/Sub message through decode, core, store, publish.

Order of effects, and why it makes redelivery safe: the state (with the event's id in
its processed record) is committed *before* anything is published. If publishing then
fails, the function raises, Pub/Sub redelivers, the core recognises the event id and
answers identically, and the same enriched event is published again; the forwarder
deduplicates by ``event_id``. Nothing is counted twice and nothing is lost.

Before the core sees an event, privacy rules apply (a PII-looking ``user_id`` is hashed
or dropped, configured parameters scrubbed, ``user_data`` reduced to hashes), so raw PII
is never stored nor published. Bot traffic is flagged or dropped by ``BOT_MODE``.

Permanent problems (bad payload, too late) are dead-lettered with their reason and the
message is acknowledged; transient ones (Firestore, Pub/Sub) are retried a bounded number
of times here, then raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.domain.bots import classify_user_agent, decide_bot_action
from shared.domain.crossdomain.claims import CrossDomainLinker, LinkClaim, LinkEvidenceStore
from shared.errors import InvalidEvent, PermanentError
from shared.domain.events import RawEvent, decode_raw_event
from shared.adapters.firestore.state_store import (
    ClientStateStore,
    FirestoreLinkStore,
    FirestoreStateStore,
    Snapshot,
    UserLink,
    expire_at,
    firestore_client,
)
from shared.logs import get_logger
from shared.domain.messages import PubSubMessage, message_from_cloud_event
from shared.domain.privacy import apply_user_id_policy, scrub_parameters
from shared.adapters.pubsub import (
    OutgoingMessage,
    Publisher,
    PubSubPublisher,
    dead_letter_message,
    json_bytes,
)
from shared.domain.resolution import Resolution, Rules, enrich, resolve_cookieless, resolve_event
from shared.retry import transient_retry
from shared.settings import Settings
from shared.domain.state import ClientState
from shared.domain.urls import remove_query_parameters

log = get_logger("resolve")

BRIDGE_MEMORY_MICROS = 3_600_000_000


def system_clock_micros() -> int:
    return time.time_ns() // 1_000


@dataclass(frozen=True)
class Outcome:
    """What happened to one message (returned for tests and the CLI; logged for operators)."""

    status: str
    """``resolved``, ``duplicate``, ``cookieless``, ``bot_dropped`` or ``dead_lettered``."""
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
        *,
        link_evidence: LinkEvidenceStore | None = None,
    ) -> None:
        self._settings = settings
        self._rules = Rules(sessions=settings.sessions, identity=settings.identity)
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._sleep = sleep
        self._linker = CrossDomainLinker(settings.privacy, link_evidence) if link_evidence else None

    @classmethod
    def from_settings(cls, settings: Settings) -> ResolveRuntime:
        client = firestore_client(settings)
        return cls(
            settings,
            FirestoreStateStore.from_settings(settings, client),
            PubSubPublisher(settings.project),
            link_evidence=FirestoreLinkStore.from_settings(settings, client),
        )

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
        if messages:
            self._publisher.publish_all(messages)
        return outcome

    def resolve(self, event: RawEvent) -> tuple[Outcome, Resolution | None]:
        """Resolve and persist without publishing (the inline endpoint's path; ``process``
        publishes). No resolution for cookieless or dropped events: they touch no state."""
        event = self._protect(event)
        bot = decide_bot_action(
            classify_user_agent(event.user_agent), self._settings.privacy.bot_mode
        )
        if bot == "drop":
            log.info("bot dropped", extra={"event": "bot_dropped", **_ids(event)})
            return Outcome("bot_dropped"), None
        if event.consent.analytics_denied:
            enriched = enrich(event, resolve_cookieless(event), duplicate=False, bot=bot == "flag")
            log.info("resolved", extra={"event": "resolved", "cookieless": True, **_ids(event)})
            return Outcome("cookieless", enriched), None
        resolution = self._resolve_and_save(event)
        event = self._published(event)
        enriched = enrich(
            event, resolution.resolved, duplicate=resolution.duplicate, bot=bot == "flag"
        )
        resolved = resolution.resolved
        log.info(
            "duplicate" if resolution.duplicate else "resolved",
            extra={
                "event": "duplicate_skipped" if resolution.duplicate else "resolved",
                "new_session": resolved.is_new_session and not resolution.duplicate,
                "stitched": resolved.identity_source == "stitched",
                "new_link": resolution.new_link,
                "late": resolved.late,
                "bot": bot == "flag",
                "cross_domain": resolved.link["kind"] if resolved.link else None,
                "session_id": resolved.session_id,
                **_ids(event),
            },
        )
        status = "duplicate" if resolution.duplicate else "resolved"
        return Outcome(status, enriched), resolution

    def link_messages(self, event: RawEvent, resolution: Resolution) -> list[OutgoingMessage]:
        """Identity-links messages for what this event linked. A redelivery publishes them
        again: the first publish may have failed after the state was committed, and the
        topic's readers deduplicate by ``event_id`` and ``link_kind``."""
        messages = []
        if resolution.resolved.new_link:
            messages.append(self._link_message(event, resolution, "login"))
        if resolution.resolved.link:
            messages.append(self._link_message(event, resolution, resolution.resolved.link["kind"]))
        return messages

    def _protect(self, event: RawEvent) -> RawEvent:
        """Apply the privacy rules: the returned event carries no raw PII."""
        privacy = self._settings.privacy
        decision = apply_user_id_policy(
            event.user_id, privacy.pii_user_id_mode, privacy.pii_hash_secret
        )
        payload = (
            scrub_parameters(
                event.payload,
                privacy.pii_parameters,
                privacy.pii_user_id_mode,
                privacy.pii_hash_secret,
            )
            if privacy.pii_parameters or "user_data" in event.payload
            else dict(event.payload)
        )
        if decision.action != "kept":
            log.info("pii user id", extra={"event": "pii_user_id", "action": decision.action})
            payload.pop("user_id", None)
            if decision.user_id is not None:
                payload["user_id"] = decision.user_id
        return replace(event, user_id=decision.user_id, payload=payload)

    def _published(self, event: RawEvent) -> RawEvent:
        """The event as forwarded: a spent link token is no business of GA4's reports."""
        parameter = self._settings.privacy.link_token_parameter
        location = event.page_location
        if not location or parameter not in location:
            return event
        cleaned = remove_query_parameters(location, [parameter])
        return replace(
            event, page_location=cleaned, payload={**event.payload, "page_location": cleaned}
        )

    def _resolve_and_save(self, event: RawEvent) -> Resolution:
        retrying = transient_retry(attempts=6, budget_seconds=30.0, logger=log, sleep=self._sleep)
        for attempt in retrying:
            with attempt:
                return self._resolve_once(event)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _resolve_once(self, event: RawEvent) -> Resolution:
        own = self._store.load(event.client_id)
        now = self._clock()
        if own.state is not None and own.state.processed_result(event.event_id):
            return self._commit(own, event, now)
        if own.state is not None and own.state.alias_of:
            target = self._store.load(own.state.alias_of)
            return self._commit(target, replace(event, client_id=own.state.alias_of), now)
        claim = self._claim(event, now)
        if claim is None:
            resolution = self._commit(own, event, now)
            self._observe(event, event.client_id, now)
            return resolution
        canonical = claim.canonical_client_id
        target = self._store.load(canonical)
        if target.state is not None and target.state.alias_of:
            canonical = target.state.alias_of
            if canonical == event.client_id:
                return self._commit(own, event, now)
            target = self._store.load(canonical)
        alias = replace(
            own.state
            or ClientState(client_id=event.client_id, first_seen_micros=event.time_micros),
            alias_of=canonical,
        )
        link = {"kind": claim.kind, "from_client_id": event.client_id}
        resolution = self._commit(
            target, replace(event, client_id=canonical), now, link=link, alias=(own, alias)
        )
        log.info(
            "cross-domain link",
            extra={
                "event": "cross_domain_link",
                "kind": claim.kind,
                "canonical": canonical,
                **_ids(event),
            },
        )
        self._observe(event, canonical, now)
        return resolution

    def _commit(
        self,
        snapshot: Snapshot,
        event: RawEvent,
        now: int,
        *,
        link: Mapping[str, str] | None = None,
        alias: tuple[Snapshot, ClientState] | None = None,
    ) -> Resolution:
        resolution = resolve_event(snapshot.state, event, self._rules, now, link)
        if resolution.duplicate:
            return resolution
        links = (
            [UserLink(resolution.resolved.user_id, event.client_id, event.time_micros)]
            if resolution.new_link and resolution.resolved.user_id
            else []
        )
        self._store.save(
            snapshot,
            resolution.state,
            links,
            expire_at(now, self._settings.ttl_micros),
            aliases=[alias] if alias else (),
        )
        return resolution

    def _claim(self, event: RawEvent, now: int) -> LinkClaim | None:
        if self._linker is None:
            return None
        claim, refusal = self._linker.claim(event, now)
        if refusal is not None:
            log.warning(
                "cross-domain evidence refused",
                extra={
                    "event": "cross_domain_refused",
                    "kind": refusal.kind,
                    "reason": refusal.reason,
                    **_ids(event),
                },
            )
        return claim

    def _observe(self, event: RawEvent, canonical: str, now: int) -> None:
        if self._linker is not None and self._settings.privacy.partner_domains:
            self._linker.observe(event, canonical, expire_at(now, BRIDGE_MEMORY_MICROS))

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

    def _link_message(self, event: RawEvent, resolution: Resolution, kind: str) -> OutgoingMessage:
        state = resolution.state
        link = resolution.resolved.link or {}
        body = {
            "client_id": link.get("from_client_id", state.client_id),
            "canonical_client_id": state.client_id,
            "user_id": resolution.resolved.user_id,
            "linked_at_micros": event.time_micros,
            "first_seen_micros": state.first_seen_micros,
            "link_kind": kind,
            "probabilistic": kind == "probabilistic",
            "event_id": event.event_id,
            "stream_id": event.stream_id,
        }
        return OutgoingMessage(
            topic=self._settings.topics.identity_links,
            data=json_bytes(body),
            ordering_key=state.client_id,
            attributes={"client_id": state.client_id, "link_kind": kind},
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
