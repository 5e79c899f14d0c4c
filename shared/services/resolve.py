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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.domain.bots import classify_user_agent, decide_bot_action
from shared.domain.crossdomain.aliases import alias_state, canonical_for_claim, resolved_on
from shared.domain.crossdomain.claims import LinkClaim, LinkRules
from shared.domain.events import RawEvent, decode_raw_event
from shared.domain.messages import (
    OutgoingMessage,
    PubSubMessage,
    dead_letter_message,
    json_bytes,
    message_from_cloud_event,
)
from shared.domain.privacy import PrivacyRules, protect
from shared.domain.resolution import Resolution, Rules, enrich, resolve_cookieless, resolve_event
from shared.domain.state import ClientState, expires_at
from shared.domain.urls import remove_query_parameters
from shared.errors import InvalidEvent, PermanentError
from shared.logs import get_logger
from shared.ports import ClientStateStore, LinkEvidenceStore, Publisher, Snapshot, UserLink
from shared.retry import RetryPolicy
from shared.services.linking import CrossDomainLinker

__all__ = ["Outcome", "ResolveConfig", "ResolveRuntime"]

log = get_logger("resolve")

BRIDGE_MEMORY_MICROS = 3_600_000_000


@dataclass(frozen=True)
class ResolveConfig:
    """What the resolve use case needs of the deployment (built by ``shared.bootstrap``)."""

    enriched_topic: str
    identity_links_topic: str
    dead_letter_topic: str
    rules: Rules = field(default_factory=Rules)
    privacy: PrivacyRules = field(default_factory=PrivacyRules)
    links: LinkRules = field(default_factory=LinkRules)
    bot_mode: str = "flag"
    ttl_micros: int = 400 * 86_400 * 1_000_000


@dataclass(frozen=True)
class Outcome:
    """What happened to one message (returned for tests and the CLI; logged for operators)."""

    status: str
    """``resolved``, ``duplicate``, ``cookieless``, ``bot_dropped`` or ``dead_lettered``."""
    enriched: Mapping[str, Any] | None = None
    reason: str | None = None


class ResolveRuntime:
    """The resolve use case: one raw event through privacy, bots, cross-domain evidence,
    the pure core, the state store and the publisher."""

    def __init__(
        self,
        config: ResolveConfig,
        store: ClientStateStore,
        publisher: Publisher,
        clock: Callable[[], int],
        sleep: Callable[[float], None] | None = None,
        *,
        link_evidence: LinkEvidenceStore | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._retry = RetryPolicy(attempts=6, budget_seconds=30.0, logger=log, sleep=sleep)
        self._linker = CrossDomainLinker(config.links, link_evidence) if link_evidence else None

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
        bot = decide_bot_action(classify_user_agent(event.user_agent), self._config.bot_mode)
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
        protected, decision = protect(event, self._config.privacy)
        if decision.action != "kept":
            log.info("pii user id", extra={"event": "pii_user_id", "action": decision.action})
        return protected

    def _published(self, event: RawEvent) -> RawEvent:
        """The event as forwarded: a spent link token is no business of GA4's reports."""
        parameter = self._config.links.token_parameter
        location = event.page_location
        if not location or parameter not in location:
            return event
        cleaned = remove_query_parameters(location, [parameter])
        return replace(
            event, page_location=cleaned, payload={**event.payload, "page_location": cleaned}
        )

    def _resolve_and_save(self, event: RawEvent) -> Resolution:
        return self._retry.run(self._resolve_once, event, log_fields=lambda: _ids(event))

    def _resolve_once(self, event: RawEvent) -> Resolution:
        own = self._store.load(event.client_id)
        now = self._clock()
        aliased_to = resolved_on(own.state, event.event_id)
        if aliased_to is not None:
            return self._commit(
                self._store.load(aliased_to), replace(event, client_id=aliased_to), now
            )
        claim = (
            None
            if own.state and own.state.processed_result(event.event_id)
            else self._claim(event, now)
        )
        if claim is None:
            resolution = self._commit(own, event, now)
            self._observe(event, event.client_id, now)
            return resolution
        return self._link(own, event, claim, now)

    def _link(self, own: Snapshot, event: RawEvent, claim: LinkClaim, now: int) -> Resolution:
        """Resolve on the claimed client (its canonical one if it is an alias) and make
        ``own`` its alias in the same commit; a cycle is refused and ``own`` resolves."""
        claimed = self._store.load(claim.canonical_client_id)
        canonical = canonical_for_claim(event.client_id, claim.canonical_client_id, claimed.state)
        if canonical is None:
            return self._commit(own, event, now)
        target = claimed if canonical == claim.canonical_client_id else self._store.load(canonical)
        alias = alias_state(own.state, event.client_id, event.time_micros, canonical)
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
        resolution = resolve_event(snapshot.state, event, self._config.rules, now, link)
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
            expires_at(now, self._config.ttl_micros),
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
        if self._linker is not None and self._config.links.bridging:
            self._linker.observe(event, canonical, expires_at(now, BRIDGE_MEMORY_MICROS))

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
            topic=self._config.enriched_topic,
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
            topic=self._config.identity_links_topic,
            data=json_bytes(body),
            ordering_key=state.client_id,
            attributes={"client_id": state.client_id, "link_kind": kind},
        )

    def _dead_letter(self, error: PermanentError, message: PubSubMessage) -> Outcome:
        topic = self._config.dead_letter_topic
        dead_letter = dead_letter_message(topic, error, message, "resolve", self._clock())
        self._publisher.publish_all([dead_letter])
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
