"""Deployment settings: read once from the environment, validated, then immutable.

Invariant: nothing else in ga4-stitch reads ``os.environ``. Entry points call
``Settings.from_env()`` once per instance (lazily, never at import time) and pass the
result down. A missing or out-of-range value raises ``SettingsError`` naming the variable,
so a bad deployment fails on its first message instead of mis-sessionizing traffic.

Secrets (``GA4_API_SECRET``, ``PII_HASH_SECRET``, ``LINK_TOKEN_SECRET``) are held but never
rendered: ``repr`` of a settings object masks them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.domain.datamanager import (
    DESTINATION_NAMES,
    MEASUREMENT_PROTOCOL,
    AdsConversion,
    ads_conversions_from_json,
)
from shared.domain.identity import DEFAULT_BLOCKED_USER_IDS, IdentityRules
from shared.domain.sessions import SessionRules
from shared.errors import SettingsError

__all__ = [
    "REQUIRED_VARIABLES",
    "TOPIC_DEFAULTS",
    "Ga4Settings",
    "PrivacySettings",
    "Settings",
    "Topics",
]


TOPIC_DEFAULTS = {
    "RAW_EVENTS_TOPIC": "ga4-stitch-raw-events",
    "ENRICHED_TOPIC": "ga4-stitch-enriched-events",
    "IDENTITY_LINKS_TOPIC": "ga4-stitch-identity-links",
    "RESOLVE_DEAD_LETTER_TOPIC": "ga4-stitch-raw-events-dead-letter",
    "FORWARD_DEAD_LETTER_TOPIC": "ga4-stitch-enriched-events-dead-letter",
}

REQUIRED_VARIABLES = ("GOOGLE_CLOUD_PROJECT",)
"""Variables without a default; Terraform must set each (checked by the structure tests)."""


class _Env:
    """Typed, validated access to one environment mapping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str | None = None) -> str:
        value = self._environ.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise SettingsError(f"{name} is required but not set")
        return default

    def optional(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self._environ.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, allowed: frozenset[str]) -> str:
        value = self.text(name, default).lower()
        if value not in allowed:
            raise SettingsError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
        return value

    def words(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        raw = self._environ.get(name)
        if raw is None or not raw.strip():
            return default
        return tuple(word.strip() for word in raw.split(",") if word.strip())

    def json_any(self, name: str) -> object:
        """Any JSON value (``None`` when unset); ``SettingsError`` naming ``name`` if broken."""
        raw = self._environ.get(name, "").strip()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{name} must be JSON: {exc}") from None

    def digits(self, name: str) -> str | None:
        value = self.optional(name)
        if value is not None and not value.isdigit():
            raise SettingsError(f"{name} must be digits only, got {value!r}")
        return value

    def json_object(self, name: str) -> dict[str, str]:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{name} must be a JSON object: {exc}") from None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise SettingsError(f"{name} must be a JSON object of strings")
        return value


def _stream_destinations(env: _Env) -> dict[str, str]:
    streams = {k: v.strip().lower() for k, v in env.json_object("GA4_STREAM_DESTINATIONS").items()}
    wrong = sorted(v for v in streams.values() if v not in DESTINATION_NAMES)
    if wrong:
        raise SettingsError(
            f"GA4_STREAM_DESTINATIONS values must be one of {sorted(DESTINATION_NAMES)}, "
            f"got {wrong}"
        )
    return streams


def _stream_properties(env: _Env) -> dict[str, str]:
    properties = {k: v.strip() for k, v in env.json_object("GA4_STREAM_PROPERTIES").items()}
    wrong = sorted(k for k, v in properties.items() if not v.isdigit())
    if wrong:
        raise SettingsError(f"GA4_STREAM_PROPERTIES values must be digits only; see {wrong}")
    return properties


def _ads_conversions(env: _Env) -> dict[str, AdsConversion]:
    value = env.json_any("DATA_MANAGER_ADS_CONVERSIONS")
    if value is None:
        return {}
    try:
        return ads_conversions_from_json(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"DATA_MANAGER_ADS_CONVERSIONS: {exc}") from None


@dataclass(frozen=True)
class Topics:
    raw_events: str = TOPIC_DEFAULTS["RAW_EVENTS_TOPIC"]
    enriched: str = TOPIC_DEFAULTS["ENRICHED_TOPIC"]
    identity_links: str = TOPIC_DEFAULTS["IDENTITY_LINKS_TOPIC"]
    resolve_dead_letter: str = TOPIC_DEFAULTS["RESOLVE_DEAD_LETTER_TOPIC"]
    forward_dead_letter: str = TOPIC_DEFAULTS["FORWARD_DEAD_LETTER_TOPIC"]


@dataclass(frozen=True)
class Ga4Settings:
    """Where and how enriched events reach the Measurement Protocol."""

    measurement_id: str | None = None
    api_secret: str | None = field(default=None, repr=False)
    endpoint: str = "https://www.google-analytics.com"
    validate_first: bool = False
    """Send every request to ``/debug/mp/collect`` first and dead-letter on messages."""
    unknown_outcome: str = "assume_sent"
    """A request GA4 may have taken without answering (read timeout): ``assume_sent``
    (acknowledge, never a duplicate) or ``resend`` (redeliver, never a loss)."""
    ledger: str = "lean"
    """``FORWARD_LEDGER``: ``lean`` (exactly once but for a crash between GA4's answer and
    the ledger write: one read before the send, one write after) or ``none`` (no ledger,
    at least once: every redelivery of a sent event is sent again)."""
    timeout_seconds: float = 5.0
    """Read timeout of one request; the connect timeout is min(3.05, this)."""
    connections: int = 16
    """Connections to GA4 kept open per instance: ``THREADS``, the requests
    functions-framework serves at once (Terraform sets it to the forward function's
    concurrency), so no concurrent send opens and drops a connection (and its TLS
    handshake) for want of an idle one."""
    retry_attempts: int = 4
    retry_budget_seconds: float = 20.0
    """No attempt starts after this, so one send lasts at most the budget plus one attempt
    (``Ga4Client.longest_send_seconds``, 28.05 s by default), which must stay below the
    forward function's timeout, itself at most the push subscription's ack deadline (60 s
    each by default)."""
    stream_routes: Mapping[str, str] = field(default_factory=dict)
    """Hostname (or ``*.suffix``) of ``page_location`` -> measurement id."""
    stream_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Measurement id -> API secret, for routed streams with their own secret."""
    default_engagement_time_msec: int = 1
    param_allow: tuple[str, ...] = ()
    param_deny: tuple[str, ...] = ()
    param_renames: Mapping[str, str] = field(default_factory=dict)
    destination: str = MEASUREMENT_PROTOCOL
    """``GA4_DESTINATION``: the API every stream is forwarded through unless
    ``stream_destinations`` says otherwise: ``measurement_protocol`` (``/mp/collect``) or
    ``data_manager`` (the Data Manager API's ``ingestEvents``)."""
    stream_destinations: Mapping[str, str] = field(default_factory=dict)
    """``GA4_STREAM_DESTINATIONS``: measurement id -> destination, per stream."""
    property_id: str | None = None
    """``GA4_PROPERTY_ID``: the numeric GA4 property of ``measurement_id``; required when
    that stream goes to ``data_manager``."""
    stream_properties: Mapping[str, str] = field(default_factory=dict)
    """``GA4_STREAM_PROPERTIES``: measurement id -> numeric GA4 property, for routed
    streams that go to ``data_manager``."""
    data_manager_endpoint: str = "https://datamanager.googleapis.com"
    """``DATA_MANAGER_ENDPOINT``: the Data Manager API, or a local endpoint (no
    credentials are sent to ``localhost`` or plain ``http://``)."""
    ads_conversions: Mapping[str, AdsConversion] = field(default_factory=dict)
    """``DATA_MANAGER_ADS_CONVERSIONS``: event name -> the Google Ads conversion action
    that also takes it (``{"purchase": {"customer_id": "1234567890",
    "conversion_action_id": "987654321", "login_customer_id": "1112223333"}}``, the
    last optional), on streams sent through ``data_manager``."""
    data_manager_batch_window_ms: int = 1000
    """``DATA_MANAGER_BATCH_WINDOW_MS``: how long the first event of a batch waits for
    others of its stream on the same instance before one ``ingestEvents`` request carries
    them all (0: one request per event, no wait). The API allows 300 requests a minute per
    project, so one request per event caps a project at 5 events a second; each event
    may now wait this long more, which ``DataManagerClient.longest_send_seconds``
    counts."""
    data_manager_batch_max_events: int = 500
    """``DATA_MANAGER_BATCH_MAX_EVENTS``: a batch is sent as soon as it holds this many
    events (the API takes at most 2,000 per request)."""

    def stream_property(self, measurement_id: str) -> str | None:
        """The stream's GA4 property id: its own, else ``property_id`` for the default
        stream."""
        if measurement_id in self.stream_properties:
            return self.stream_properties[measurement_id]
        return self.property_id if measurement_id == self.measurement_id else None

    def require(self) -> tuple[str, str]:
        """The default stream's measurement id and secret, or a ``SettingsError``."""
        if not self.measurement_id:
            raise SettingsError("GA4_MEASUREMENT_ID is required to forward events")
        if not self.api_secret:
            raise SettingsError("GA4_API_SECRET is required to forward events")
        return self.measurement_id, self.api_secret


@dataclass(frozen=True)
class PrivacySettings:
    pii_user_id_mode: str = "hash"
    """``hash`` (HMAC-SHA256 with ``pii_hash_secret``) or ``drop``."""
    pii_hash_secret: str | None = field(default=None, repr=False)
    pii_parameters: tuple[str, ...] = ()
    ip_mode: str = "pass"
    """``pass`` forwards ``ip_override`` as received, ``truncate`` zeroes the host part,
    ``drop`` removes it. IPs are never stored whatever the mode."""
    bot_mode: str = "flag"
    """``flag`` marks bot traffic in the enriched event, ``drop`` dead-letters it, ``off``."""
    link_token_secret: str | None = field(default=None, repr=False)
    link_token_ttl_seconds: int = 300
    link_token_parameter: str = "_gs_link"  # noqa: S105 - a URL parameter name
    linker_enabled: bool = True
    """Honour GA4's own ``_gl`` linker parameter."""
    partner_domains: tuple[str, ...] = ()
    """Opt-in probabilistic bridging from these referrer domains (empty: off)."""
    bridging_salt: str | None = field(default=None, repr=False)
    """Salt of the user-agent and IP hashes bridging compares (at least 16 bytes)."""
    inline_shared_key: str | None = field(default=None, repr=False)
    """When set, the inline endpoints also require ``X-Ga4-Stitch-Key`` to match."""


@dataclass(frozen=True)
class Settings:
    project: str
    database: str = "(default)"
    collection_prefix: str = ""
    state_ttl_days: int = 400
    sessions: SessionRules = field(default_factory=SessionRules)
    identity: IdentityRules = field(default_factory=IdentityRules)
    topics: Topics = field(default_factory=Topics)
    ga4: Ga4Settings = field(default_factory=Ga4Settings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = _Env(environ)
        project = env.optional("GOOGLE_CLOUD_PROJECT") or env.optional("GCP_PROJECT")
        if not project:
            raise SettingsError("GOOGLE_CLOUD_PROJECT is required but not set")
        minutes = 60_000_000
        return cls(
            project=project,
            database=env.text("FIRESTORE_DATABASE", "(default)"),
            collection_prefix=env.text("COLLECTION_PREFIX", ""),
            state_ttl_days=env.integer("STATE_TTL_DAYS", 400, 1, 3650),
            sessions=SessionRules(
                timeout_micros=env.integer("SESSION_TIMEOUT_MINUTES", 30, 5, 475) * minutes,
                allowed_lateness_micros=env.integer("ALLOWED_LATENESS_HOURS", 72, 1, 24 * 30)
                * 60
                * minutes,
                split_on_campaign=env.flag("SPLIT_ON_CAMPAIGN"),
                split_on_user_change=env.flag("SPLIT_ON_USER_CHANGE"),
                max_session_micros=env.integer("MAX_SESSION_MINUTES", 0, 0, 7 * 24 * 60) * minutes,
                max_session_events=env.integer("MAX_SESSION_EVENTS", 0, 0, 1_000_000),
                windows_kept=env.integer("SESSION_WINDOWS_KEPT", 8, 1, 100),
                processed_kept=env.integer("DEDUP_EVENTS_KEPT", 100, 1, 2000),
            ),
            identity=IdentityRules(
                logout_events=frozenset(
                    name.lower() for name in env.words("LOGOUT_EVENTS", ("logout",))
                ),
                blocked_user_ids=DEFAULT_BLOCKED_USER_IDS
                | frozenset(value.lower() for value in env.words("BLOCKED_USER_IDS")),
            ),
            topics=Topics(
                raw_events=env.text("RAW_EVENTS_TOPIC", TOPIC_DEFAULTS["RAW_EVENTS_TOPIC"]),
                enriched=env.text("ENRICHED_TOPIC", TOPIC_DEFAULTS["ENRICHED_TOPIC"]),
                identity_links=env.text(
                    "IDENTITY_LINKS_TOPIC", TOPIC_DEFAULTS["IDENTITY_LINKS_TOPIC"]
                ),
                resolve_dead_letter=env.text(
                    "RESOLVE_DEAD_LETTER_TOPIC", TOPIC_DEFAULTS["RESOLVE_DEAD_LETTER_TOPIC"]
                ),
                forward_dead_letter=env.text(
                    "FORWARD_DEAD_LETTER_TOPIC", TOPIC_DEFAULTS["FORWARD_DEAD_LETTER_TOPIC"]
                ),
            ),
            ga4=Ga4Settings(
                measurement_id=env.optional("GA4_MEASUREMENT_ID"),
                api_secret=env.optional("GA4_API_SECRET"),
                endpoint=env.text("GA4_ENDPOINT", "https://www.google-analytics.com").rstrip("/"),
                validate_first=env.flag("GA4_VALIDATE_FIRST"),
                unknown_outcome=env.choice(
                    "GA4_UNKNOWN_OUTCOME", "assume_sent", frozenset({"assume_sent", "resend"})
                ),
                ledger=env.choice("FORWARD_LEDGER", "lean", frozenset({"lean", "none"})),
                timeout_seconds=env.number("GA4_TIMEOUT_SECONDS", 5.0, 0.1, 60.0),
                connections=env.integer("THREADS", 16, 1, 1000),
                retry_attempts=env.integer("GA4_RETRY_ATTEMPTS", 4, 1, 10),
                retry_budget_seconds=env.number("GA4_RETRY_BUDGET_SECONDS", 20.0, 0.1, 300.0),
                stream_routes=env.json_object("GA4_STREAM_ROUTES"),
                stream_secrets=env.json_object("GA4_STREAM_SECRETS"),
                default_engagement_time_msec=env.integer(
                    "GA4_DEFAULT_ENGAGEMENT_TIME_MSEC", 1, 1, 3_600_000
                ),
                param_allow=env.words("GA4_PARAM_ALLOW"),
                param_deny=env.words("GA4_PARAM_DENY"),
                param_renames=env.json_object("GA4_PARAM_RENAMES"),
                destination=env.choice(
                    "GA4_DESTINATION",
                    "measurement_protocol",
                    frozenset({"measurement_protocol", "data_manager"}),
                ),
                stream_destinations=_stream_destinations(env),
                property_id=env.digits("GA4_PROPERTY_ID"),
                stream_properties=_stream_properties(env),
                data_manager_endpoint=env.text(
                    "DATA_MANAGER_ENDPOINT", "https://datamanager.googleapis.com"
                ).rstrip("/"),
                ads_conversions=_ads_conversions(env),
                data_manager_batch_window_ms=env.integer(
                    "DATA_MANAGER_BATCH_WINDOW_MS", 1000, 0, 10_000
                ),
                data_manager_batch_max_events=env.integer(
                    "DATA_MANAGER_BATCH_MAX_EVENTS", 500, 1, 2000
                ),
            ),
            privacy=PrivacySettings(
                pii_user_id_mode=env.choice(
                    "PII_USER_ID_MODE", "hash", frozenset({"hash", "drop"})
                ),
                pii_hash_secret=env.optional("PII_HASH_SECRET"),
                pii_parameters=env.words("PII_PARAMETERS"),
                ip_mode=env.choice("IP_MODE", "pass", frozenset({"pass", "truncate", "drop"})),
                bot_mode=env.choice("BOT_MODE", "flag", frozenset({"flag", "drop", "off"})),
                link_token_secret=env.optional("LINK_TOKEN_SECRET"),
                link_token_ttl_seconds=env.integer("LINK_TOKEN_TTL_SECONDS", 300, 10, 86_400),
                link_token_parameter=env.text("LINK_TOKEN_PARAMETER", "_gs_link"),
                linker_enabled=env.flag("LINKER_ENABLED", default=True),
                partner_domains=tuple(d.lower() for d in env.words("PARTNER_DOMAINS")),
                bridging_salt=env.optional("BRIDGING_SALT"),
                inline_shared_key=env.optional("INLINE_SHARED_KEY"),
            ),
            log_level=env.choice(
                "LOG_LEVEL", "INFO", frozenset({"debug", "info", "warning", "error"})
            ).upper(),
        )

    def __post_init__(self) -> None:
        privacy = self.privacy
        for name, value in (
            ("LINK_TOKEN_SECRET", privacy.link_token_secret),
            ("BRIDGING_SALT", privacy.bridging_salt),
            ("PII_HASH_SECRET", privacy.pii_hash_secret),
        ):
            if value is not None and len(value.encode()) < 16:
                raise SettingsError(f"{name} must be at least 16 bytes long")
        if privacy.partner_domains and not privacy.bridging_salt:
            raise SettingsError("PARTNER_DOMAINS needs BRIDGING_SALT (at least 16 bytes)")

    def collection(self, name: str) -> str:
        """The Firestore collection for ``name`` (``clients``, ``users``, ``forwarded``...)."""
        return f"{self.collection_prefix}{name}"

    @property
    def ttl_micros(self) -> int:
        return self.state_ttl_days * 86_400 * 1_000_000
