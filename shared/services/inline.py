"""The HTTP functions' service: inline resolution for the GTM SC variable, and link tokens.

Invariants:

- One decoding path and one state: a request body becomes raw event data and goes through
  ``decode_raw_event`` and the resolver's ``resolve``, so an inline answer is recorded in the
  client's state exactly as the pipeline records an event. The pipeline delivering the same
  ``event_id`` later finds it there and answers identically, counting it once.
- Without an ``event_id`` the id is derived from the event's canonical fields, so two reads
  of one variable for one event are one event, not two.
- The state is committed before the answer; new identity links are published, the enriched
  event is not (the container's own GA4 tag sends the event).
- The answer's ``resolved_user_id`` is the resolver's, which has already applied the one
  PII rule (``shared.domain.privacy``) that the forwarder applies too: the GA4 tag sends
  it to GA4 as it is.

Status codes: 200 answer; 400 bad input (a reason of ``shared.domain.events.REASONS``, or the
resolver's ``too_late`` / ``time_in_future``); 401 wrong or missing shared key; 405 not a
POST; 501 link tokens not configured; 503 a dependency failed (the variable then falls
back to the event's own ids).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, Protocol

from shared.domain.crossdomain.claims import LinkRules
from shared.domain.crossdomain.tokens import LINK_TOKEN_FIELD, mint_link_token, new_nonce
from shared.domain.events import RawEvent, decode_raw_event, normalize_client_id
from shared.errors import InvalidEvent, PermanentError, TransientError
from shared.logs import get_logger
from shared.ports import Publisher
from shared.services.resolve import ResolveRuntime

__all__ = [
    "KEY_HEADER",
    "InlineRuntime",
    "Request",
    "decode_request",
    "derived_event_id",
]


class Headers(Protocol):
    def get(self, key: str) -> str | None: ...


class Request(Protocol):
    """What the service reads of an HTTP request (functions-framework passes Flask's)."""

    @property
    def method(self) -> str: ...

    @property
    def headers(self) -> Headers: ...

    def get_json(self, *, force: bool = ..., silent: bool = ...) -> Any: ...


log = get_logger("inline")

Answer = tuple[dict[str, Any], int, dict[str, str]]

KEY_HEADER: Final = "X-Ga4-Stitch-Key"
DEFAULT_EVENT_NAME: Final = "page_view"
DERIVED_ID_PREFIX: Final = "inline-"
REQUEST_FIELDS: Final = (
    "client_id",
    "user_id",
    "event_timestamp",
    "event_id",
    "event_name",
    "measurement_id",
    "x-ga-measurement_id",
    "x-ga-gcs",
    "consent",
    "page_location",
    "page_referrer",
    "user_agent",
    LINK_TOKEN_FIELD,
)
"""What the resolver may use from a request; anything else in the body is ignored."""
_PENDING_ID: Final = "pending"
_HEADERS: Final = {"Cache-Control": "no-store"}


class InlineRuntime:
    """The inline use case: the resolve use case answered over HTTP, plus link tokens."""

    def __init__(
        self,
        links: LinkRules,
        resolver: ResolveRuntime,
        publisher: Publisher,
        *,
        clock: Callable[[], int],
        shared_key: str | None = None,
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self._links = links
        self._resolver = resolver
        self._publisher = publisher
        self._shared_key = shared_key
        self._clock = clock
        self._nonce = nonce

    def handle_resolve(self, request: Request) -> Answer:
        """``POST /resolve-identity-session``: the event's stitched user and GA4 session."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        try:
            event = decode_request(_json_object(request))
            outcome, resolution = self._resolver.resolve(event)
            links = [] if resolution is None else self._resolver.link_messages(event, resolution)
            if links:
                self._publisher.publish_all(links)
        except PermanentError as error:
            return _bad_request(error)
        except TransientError as error:
            log.warning(
                "inline resolution unavailable: %s",
                error,
                extra={"event": "inline_unavailable", "reason": "unavailable"},
            )
            return _answer({"reason": "unavailable", "detail": "state or publish failed"}, 503)
        if outcome.enriched is None:
            return _answer(_stateless(event), 200)
        return _answer(self._contract(outcome.enriched["resolved"]), 200)

    def handle_mint(self, request: Request) -> Answer:
        """``POST /mint-link-token``: a signed, single-use cross-domain link token."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        links = self._links
        if not links.token_secret:
            detail = "LINK_TOKEN_SECRET is not set"
            return _answer({"reason": "link_tokens_disabled", "detail": detail}, 501)
        try:
            client_id = normalize_client_id(_json_object(request).get("client_id"))
        except InvalidEvent as error:
            return _bad_request(error)
        now_seconds = self._clock() / 1_000_000
        ttl = links.token_ttl_seconds
        token = mint_link_token(client_id, links.token_secret, now_seconds, ttl, self._nonce())
        body = {
            "token": token,
            "parameter": links.token_parameter,
            "expires_at": int(now_seconds) + ttl,
            "client_id": client_id,
        }
        return _answer(body, 200)

    def _refuse(self, request: Request) -> Answer | None:
        if self._shared_key is not None:
            given = (request.headers.get(KEY_HEADER) or "").encode()
            if not hmac.compare_digest(given, self._shared_key.encode()):
                log.warning("shared key refused", extra={"event": "inline_unauthorized"})
                detail = f"{KEY_HEADER} is missing or wrong"
                return _answer({"reason": "unauthorized", "detail": detail}, 401)
        if request.method != "POST":
            body = {"reason": "method_not_allowed", "detail": f"{request.method} is not POST"}
            return body, 405, {**_HEADERS, "Allow": "POST"}
        return None

    @staticmethod
    def _contract(resolved: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "resolved_user_id": resolved["user_id"],
            "resolved_ga_session_id": resolved["session_id"],
            "session_number": resolved["session_number"],
            "identity_source": resolved["identity_source"],
            "client_id": resolved["client_id"],
            "event_index": resolved["event_index"],
            "is_new_session": resolved["is_new_session"],
            "event_id": resolved["event_id"],
            "source": "server",
        }


def decode_request(body: Mapping[str, Any]) -> RawEvent:
    """The request as a raw event: its known fields through ``decode_raw_event``, the event
    name defaulting to ``page_view``, the event id derived when none is given."""
    data = {name: body[name] for name in REQUEST_FIELDS if name in body}
    if not _given(data.get("event_name")):
        data["event_name"] = DEFAULT_EVENT_NAME
    event = decode_raw_event(data, _PENDING_ID, None)
    if _given(data.get("event_id")):
        return event
    return replace(event, event_id=derived_event_id(event))


def derived_event_id(event: RawEvent) -> str:
    """``inline-`` + SHA-256 of what identifies the event (canonical client id, user id,
    name, stream, time): equal for every read of one event, distinct across events."""
    key = [event.client_id, event.user_id, event.event_name, event.stream_id, event.time_micros]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()
    return DERIVED_ID_PREFIX + digest[:32]


def _stateless(event: RawEvent) -> dict[str, Any]:
    """The answer for an event the resolver dropped (``BOT_MODE=drop``): no user, no session."""
    return {
        "resolved_user_id": None,
        "resolved_ga_session_id": None,
        "session_number": None,
        "identity_source": "anonymous",
        "client_id": event.client_id,
        "event_index": None,
        "is_new_session": False,
        "event_id": event.event_id,
        "source": "server",
    }


def _given(value: Any) -> bool:
    return value is not None and bool(str(value).strip())


def _json_object(request: Request) -> Mapping[str, Any]:
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise InvalidEvent("not_json", "the request body is not JSON")
    if not isinstance(body, dict):
        raise InvalidEvent("not_an_object", f"the request body is a JSON {type(body).__name__}")
    return body


def _bad_request(error: PermanentError) -> Answer:
    log.warning(
        "inline request refused: %s",
        error.detail,
        extra={"event": "inline_refused", "reason": error.reason},
    )
    return _answer({"reason": error.reason, "detail": error.detail}, 400)


def _answer(body: dict[str, Any], status: int) -> Answer:
    return body, status, dict(_HEADERS)
