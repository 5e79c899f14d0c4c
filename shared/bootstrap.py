"""The one wiring place: the only module that reads ``Settings`` and builds adapters and services.

Entry points (``functions/main.py``, the CLI, the benchmarks) ask this module for a
runtime; tests build services with fakes of ``shared.ports`` instead. Invariants: one
Firestore client and one clock per runtime, built lazily (never at import time); the
domain rules are derived from the settings here and nowhere else, so a service cannot
see a secret it does not need.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from shared.domain.crossdomain.claims import LinkRules
from shared.domain.datamanager import (
    DATA_MANAGER,
    MEASUREMENT_PROTOCOL,
    DataManagerDestination,
    DestinationPlan,
)
from shared.domain.measurement import PayloadRules
from shared.domain.privacy import PrivacyRules
from shared.domain.resolution import Rules
from shared.errors import SettingsError
from shared.ports import ForwardLedger, Ga4Sender
from shared.services.forward import ForwardRuntime, NoLedger
from shared.services.inline import InlineRuntime
from shared.services.resolve import ResolveConfig, ResolveRuntime
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.adapters.firestore.admin import FirestoreStateAdmin
    from shared.adapters.firestore.links import FirestoreLinkStore
    from shared.adapters.firestore.state_store import FirestoreStateStore

__all__ = [
    "destination_plan",
    "firestore_client",
    "forward_runtime",
    "inline_runtime",
    "link_rules",
    "link_store",
    "own_domains",
    "payload_rules",
    "privacy_rules",
    "resolve_config",
    "resolve_runtime",
    "state_admin",
    "state_store",
    "system_clock_micros",
]


def system_clock_micros() -> int:
    return time.time_ns() // 1_000


def firestore_client(settings: Settings) -> Any:
    from google.cloud import firestore

    return firestore.Client(project=settings.project, database=settings.database)


def privacy_rules(settings: Settings) -> PrivacyRules:
    privacy = settings.privacy
    return PrivacyRules(
        user_id_mode=privacy.pii_user_id_mode,
        hash_secret=privacy.pii_hash_secret,
        parameters=privacy.pii_parameters,
        ip_mode=privacy.ip_mode,
    )


def link_rules(settings: Settings) -> LinkRules:
    privacy = settings.privacy
    return LinkRules(
        token_secret=privacy.link_token_secret,
        token_ttl_seconds=privacy.link_token_ttl_seconds,
        token_parameter=privacy.link_token_parameter,
        linker_enabled=privacy.linker_enabled,
        partner_domains=privacy.partner_domains,
        bridging_salt=privacy.bridging_salt,
    )


def own_domains(settings: Settings) -> tuple[str, ...]:
    """The site's other domains, whose referrals are a hop, not a traffic source: partner
    checkout domains and every host a stream is routed for."""
    hosts = [host.removeprefix("*.") for host in settings.ga4.stream_routes]
    return tuple(dict.fromkeys([*settings.privacy.partner_domains, *hosts]))


def resolve_config(settings: Settings) -> ResolveConfig:
    return ResolveConfig(
        enriched_topic=settings.topics.enriched,
        identity_links_topic=settings.topics.identity_links,
        dead_letter_topic=settings.topics.resolve_dead_letter,
        rules=Rules(
            sessions=settings.sessions,
            identity=settings.identity,
            ignored_referrers=own_domains(settings),
        ),
        privacy=privacy_rules(settings),
        links=link_rules(settings),
        bot_mode=settings.privacy.bot_mode,
        ttl_micros=settings.ttl_micros,
    )


def payload_rules(settings: Settings) -> PayloadRules:
    ga4 = settings.ga4
    measurement_id = ga4.measurement_id
    if not measurement_id:
        # The secret is the Measurement Protocol sender's concern (``ga4_sender``): a
        # deployment forwarding every stream through the Data Manager API has none.
        raise SettingsError("GA4_MEASUREMENT_ID is required to forward events")
    return PayloadRules(
        default_measurement_id=measurement_id,
        stream_routes=dict(ga4.stream_routes),
        default_engagement_time_msec=ga4.default_engagement_time_msec,
        param_allow=frozenset(ga4.param_allow),
        param_deny=frozenset(ga4.param_deny) | frozenset(settings.privacy.pii_parameters),
        param_renames=dict(ga4.param_renames),
        ip_mode=settings.privacy.ip_mode,
        ignored_params=frozenset({settings.privacy.link_token_parameter}),
    )


def state_store(settings: Settings, client: Any) -> FirestoreStateStore:
    from shared.adapters.firestore.state_store import FirestoreStateStore

    return FirestoreStateStore(
        client,
        clients_collection=settings.collection("clients"),
        users_collection=settings.collection("users"),
        user_secret=settings.privacy.pii_hash_secret,
    )


def state_admin(settings: Settings, client: Any | None = None) -> FirestoreStateAdmin:
    from shared.adapters.firestore.admin import FirestoreStateAdmin

    return FirestoreStateAdmin(
        client or firestore_client(settings),
        clients_collection=settings.collection("clients"),
        users_collection=settings.collection("users"),
        user_secret=settings.privacy.pii_hash_secret,
    )


def link_store(settings: Settings, client: Any) -> FirestoreLinkStore:
    from shared.adapters.firestore.links import FirestoreLinkStore

    return FirestoreLinkStore(
        client, settings.collection("link_tokens"), settings.collection("bridge_candidates")
    )


def resolve_runtime(
    settings: Settings, *, client: Any | None = None, publisher: Any | None = None
) -> ResolveRuntime:
    from shared.adapters.pubsub import PubSubPublisher

    client = client or firestore_client(settings)
    return ResolveRuntime(
        resolve_config(settings),
        state_store(settings, client),
        publisher or PubSubPublisher(settings.project),
        system_clock_micros,
        link_evidence=link_store(settings, client),
    )


def destination_plan(settings: Settings, rules: PayloadRules) -> DestinationPlan:
    """Which API each served stream goes through (``GA4_DESTINATION``,
    ``GA4_STREAM_DESTINATIONS``), with the Data Manager destination of every stream sent
    there; a ``data_manager`` stream without a GA4 property id (``GA4_PROPERTY_ID``,
    ``GA4_STREAM_PROPERTIES``) is a ``SettingsError`` here, at start."""
    ga4 = settings.ga4
    streams = rules.measurement_ids | frozenset(ga4.stream_destinations)
    chosen = {stream: ga4.stream_destinations.get(stream, ga4.destination) for stream in streams}
    data_manager = {}
    for stream, name in chosen.items():
        property_id = ga4.stream_property(stream)
        if name == DATA_MANAGER and property_id:
            data_manager[stream] = DataManagerDestination(
                property_id=property_id,
                measurement_id=stream,
                ads_conversions=dict(ga4.ads_conversions),
            )
    return DestinationPlan(
        default=ga4.destination,
        streams=dict(ga4.stream_destinations),
        data_manager=data_manager,
        measurement_ids=rules.measurement_ids,
    )


def ga4_sender(settings: Settings, plan: DestinationPlan) -> Ga4Sender:
    """The Measurement Protocol sender, the Data Manager API sender, or a router between
    them by stream; each is built only when a stream uses it (the Data Manager one asks
    for application default credentials, the Measurement Protocol one for the secret)."""
    ga4 = settings.ga4
    senders: dict[str, Ga4Sender] = {}
    if plan.uses_measurement_protocol:
        from shared.adapters.ga4_http import Ga4Client

        _, secret = ga4.require()
        senders[MEASUREMENT_PROTOCOL] = Ga4Client(
            endpoint=ga4.endpoint,
            api_secret=secret,
            stream_secrets=ga4.stream_secrets,
            timeout_seconds=ga4.timeout_seconds,
            attempts=ga4.retry_attempts,
            budget_seconds=ga4.retry_budget_seconds,
            pool_size=ga4.connections,
        )
    if plan.uses_data_manager:
        from shared.adapters.data_manager import DataManagerClient

        senders[DATA_MANAGER] = DataManagerClient(
            endpoint=ga4.data_manager_endpoint,
            timeout_seconds=ga4.timeout_seconds,
            attempts=ga4.retry_attempts,
            budget_seconds=ga4.retry_budget_seconds,
            batch_window_seconds=ga4.data_manager_batch_window_ms / 1000,
            batch_max_events=ga4.data_manager_batch_max_events,
        )
    if len(senders) == 1:
        return next(iter(senders.values()))
    from shared.adapters.destinations import DestinationRouter

    return DestinationRouter(plan, senders)


def forward_runtime(settings: Settings, *, client: Any | None = None) -> ForwardRuntime:
    """The forward use case on GA4 over HTTP and the ledger ``FORWARD_LEDGER`` names.

    ``lean`` (default): the Firestore ledger, read before the send (unless the instance's
    cache knows the event was sent) and written once after it; no claim, because one
    browser's events share an ordering key and the function's timeout is at most the ack
    deadline, so two deliveries of one event never overlap. ``none``: no ledger, at least
    once. The longest send (budget + one attempt, 28.05 s by default; through the Data
    Manager API the batch window + budget + one attempt, 26 s by default) plus the ledger's
    read and write must stay below the function's timeout and the ack deadline (60 s each
    by default). A request GA4 may have taken without answering follows
    ``GA4_UNKNOWN_OUTCOME`` (``assume_sent`` by default). Each stream goes through the
    API ``destination_plan`` names for it (the Measurement Protocol unless
    ``GA4_DESTINATION`` / ``GA4_STREAM_DESTINATIONS`` say ``data_manager``), with the
    same ledger, retries and dead letters.
    """
    from shared.adapters.pubsub import LazyPublisher, PubSubPublisher

    ga4 = settings.ga4
    rules = payload_rules(settings)
    plan = destination_plan(settings, rules)
    ledger: ForwardLedger
    if ga4.ledger == "none":
        ledger = NoLedger()
    else:
        from shared.adapters.firestore.ledger import FirestoreForwardLedger

        ledger = FirestoreForwardLedger(
            client or firestore_client(settings), settings.collection("forwarded")
        )
    return ForwardRuntime(
        rules=rules,
        sender=ga4_sender(settings, plan),
        destinations=plan,
        ledger=ledger,
        publisher=LazyPublisher(lambda: PubSubPublisher(settings.project)),
        dead_letter_topic=settings.topics.forward_dead_letter,
        validate_first=ga4.validate_first,
        clock=system_clock_micros,
        unknown_outcome=ga4.unknown_outcome,
    )


def inline_runtime(settings: Settings) -> InlineRuntime:
    """One Firestore client and one publisher per instance, shared with the resolver."""
    from shared.adapters.pubsub import PubSubPublisher

    publisher = PubSubPublisher(settings.project)
    return InlineRuntime(
        link_rules(settings),
        resolve_runtime(settings, publisher=publisher),
        publisher,
        clock=system_clock_micros,
        shared_key=settings.privacy.inline_shared_key,
    )
