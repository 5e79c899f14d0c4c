"""``Ga4Sender`` over Google's Data Manager API, with the official client.

Each body is one ``IngestEventsRequest`` as JSON, already mapped and checked by the forward
service (``shared.domain.datamanager``), and is sent with
``IngestionServiceClient.ingest_events`` (REST transport by default, so a local endpoint
can serve it; gRPC on request).

Invariants:
- Authentication: application default credentials with the Data Manager scope
  (``https://www.googleapis.com/auth/datamanager``); anonymous credentials only for a
  local endpoint (``localhost``, ``127.0.0.1``, ``::1`` or plain ``http://``), like the
  emulators.
- The client's own retry is off (``retry=None``); the project's one policy
  (``shared.retry.RetryPolicy``, configured once per client) retries with the
  Measurement Protocol adapter's backoff (full jitter, ceilings 1, 2, 4, 8 s) within the
  GA4 retry budget, and honours the API's ``RetryInfo`` delay while it fits the budget.
- Retried (the API did not take the request): ``UNAVAILABLE``, ``RESOURCE_EXHAUSTED`` /
  429, ``INTERNAL`` and other 5xx, ``ABORTED``, ``UNAUTHENTICATED`` (an expired token is
  refreshed by the next attempt), and no connection at all. After the attempts a
  ``DataManagerUnavailable`` (a ``TransientError``) is raised so Pub/Sub redelivers.
- Never resent: a request that may have reached the API without an answer (read
  timeout, connection reset after writing, ``DEADLINE_EXCEEDED``, ``CANCELLED``, an
  unreadable 2xx) raises ``Ga4OutcomeUnknown`` at once; the forwarder's unknown-outcome
  policy decides.
- A refusal (``INVALID_ARGUMENT``, ``FAILED_PRECONDITION``, ``PERMISSION_DENIED``,
  ``NOT_FOUND``, any other 4xx) is a ``PermanentError`` whose reason is
  ``data_manager_`` + the API's ``ErrorInfo.reason`` (else the status) in snake case,
  and whose detail carries the status, the reason, the first offending field and every
  ``BadRequest`` field violation: the API fails the whole request fast, so a refused
  event is dead-lettered with what was wrong
  (https://developers.google.com/data-manager/api/devguides/concepts/understand-errors).
- ``validate_remote`` returns ``[]``: this path has no validate round trip; the API
  validates the real request and refuses it whole.
- Batching (``batch_window_seconds`` > 0): concurrent sends of one stream share one
  request (``shared.adapters.data_manager_batch``); each caller still gets its own
  outcome, and ``longest_send_seconds`` includes the window. With a window of 0 every
  event is its own request, sent at once.
- Every request names the events it carries in the ``x-ga4-stitch-event-ids`` metadata
  (a header on REST): one percent-quoted event id per GA4 event, in request order, comma
  separated (Google Ads copies are not listed), so a local endpoint can attribute each
  event. Google ignores it; to Google it is sent only while it stays within
  ``MAX_EVENT_IDS_HEADER`` bytes, since front ends refuse oversized headers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage

from shared.adapters.data_manager_batch import Batcher, ga4_event_ids
from shared.adapters.ga4_http import (
    EVENT_IDS_HEADER,
    RETRY_INITIAL_WAIT,
    RETRY_MAX_WAIT,
    never_reached_the_server,
)
from shared.domain.datamanager import dead_letter_reason
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger
from shared.ports import Ga4OutcomeUnknown
from shared.retry import RetryPolicy

__all__ = [
    "DATA_MANAGER_SCOPE",
    "DEFAULT_ENDPOINT",
    "EVENT_IDS_METADATA",
    "DataManagerClient",
    "DataManagerUnavailable",
    "is_local_endpoint",
    "translated",
]

log = get_logger("data_manager")

DATA_MANAGER_SCOPE = "https://www.googleapis.com/auth/datamanager"
DEFAULT_ENDPOINT = "https://datamanager.googleapis.com"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
EVENT_IDS_METADATA = EVENT_IDS_HEADER.lower()
"""Request metadata naming each GA4 event's event id (module docstring)."""
MAX_EVENT_IDS_HEADER = 8192
"""Bytes of ``x-ga4-stitch-event-ids`` sent to Google at most (no limit locally)."""

_RETRIED: tuple[type[BaseException], ...] = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.TooManyRequests,
    api_exceptions.ResourceExhausted,
    api_exceptions.InternalServerError,
    api_exceptions.BadGateway,
    api_exceptions.Aborted,
    api_exceptions.Unauthenticated,
)
_UNKNOWN: tuple[type[BaseException], ...] = (
    api_exceptions.DeadlineExceeded,
    api_exceptions.GatewayTimeout,
    api_exceptions.Cancelled,
)


class DataManagerUnavailable(TransientError):
    """The API did not take the request; a later attempt may. ``retry_after``: the wait
    its ``RetryInfo`` asked for, in seconds."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def is_local_endpoint(endpoint: str) -> bool:
    """True for a local endpoint (emulator-like): no Google credentials are sent there."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    return parts.scheme == "http" or (parts.hostname or "") in LOCAL_HOSTS


def _detail_dict(detail: Any) -> dict[str, Any]:
    """One ``google.rpc`` error detail as a dict, from REST (already a dict, with
    ``@type``) or gRPC (a protobuf message)."""
    if isinstance(detail, Mapping):
        return dict(detail)
    if isinstance(detail, ProtoMessage):
        data: dict[str, Any] = json_format.MessageToDict(detail)
        data["@type"] = f"type.googleapis.com/{detail.DESCRIPTOR.full_name}"
        return data
    return {}


def _details(error: api_exceptions.GoogleAPICallError) -> list[dict[str, Any]]:
    return [d for d in map(_detail_dict, error.details or []) if d]


def _of_type(details: Iterable[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in details if str(d.get("@type", "")).endswith(f"google.rpc.{name}")]


def _violations(details: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            key: str(violation[key])
            for key in ("field", "description", "reason")
            if violation.get(key)
        }
        for bad_request in _of_type(details, "BadRequest")
        for violation in bad_request.get("fieldViolations") or []
    ]


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    for info in _of_type(details, "RetryInfo"):
        delay = info.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(float(delay[:-1]), 0.0)
            except ValueError:
                return None
    return None


def _status_name(error: api_exceptions.GoogleAPICallError) -> str:
    status = error.grpc_status_code
    if status is not None:
        return str(status.name)
    return f"HTTP_{error.code}" if error.code else "UNKNOWN"


def translated(error: BaseException) -> Exception:
    """The error of our tree for one failed attempt (tested row by row)."""
    if isinstance(error, api_exceptions.GoogleAPICallError):
        return _translated_answer(error)
    if isinstance(error, requests.RequestException):
        text = f"{type(error).__name__}: {error}"
        if never_reached_the_server(error):
            return DataManagerUnavailable(f"Data Manager API unreachable: {text}")
        return Ga4OutcomeUnknown(
            f"no answer from the Data Manager API; it may have taken the request: {text}"
        )
    if isinstance(error, auth_exceptions.GoogleAuthError):
        return DataManagerUnavailable(f"credentials failed before sending: {error}")
    if isinstance(error, json_format.ParseError | ValueError):
        return Ga4OutcomeUnknown(f"the Data Manager API answered 2xx unreadably: {error}")
    return TransientError(f"{type(error).__name__}: {error}")


def _translated_answer(error: api_exceptions.GoogleAPICallError) -> Exception:
    """An error status (gRPC or HTTP): no answer, not taken, or refused with a reason."""
    details = _details(error)
    status = _status_name(error)
    if isinstance(error, _UNKNOWN):
        return Ga4OutcomeUnknown(
            f"no answer from the Data Manager API ({status}); it may have taken the request"
        )
    if isinstance(error, _RETRIED) or (error.code or 0) >= 500:
        return DataManagerUnavailable(
            f"the Data Manager API answered {status}: {error.message}", _retry_delay(details)
        )
    violations = _violations(details)
    reason = error.reason or next((v["reason"] for v in violations if "reason" in v), status)
    detail = {
        "status": status,
        "reason": reason,
        "field": next((v["field"] for v in violations if "field" in v), None),
        "message": error.message,
        "violations": violations,
    }
    return PermanentError(dead_letter_reason(reason), json.dumps(detail, ensure_ascii=False))


def _requested_wait(error: BaseException) -> float | None:
    return error.retry_after if isinstance(error, DataManagerUnavailable) else None


class DataManagerClient:
    """``Ga4Sender`` on the Data Manager API; ``client``, ``sleep`` and ``jitter`` are
    injectable for tests (``client``: anything with ``ingest_events(request, retry,
    timeout, metadata)``)."""

    def __init__(
        self,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        transport: str = "rest",
        timeout_seconds: float = 5.0,
        attempts: int = 4,
        budget_seconds: float = 20.0,
        initial_wait: float = RETRY_INITIAL_WAIT,
        max_wait: float = RETRY_MAX_WAIT,
        batch_window_seconds: float = 0.0,
        batch_max_events: int = 500,
        sleep: Callable[[float], None] | None = None,
        jitter: Callable[[float, float], float] | None = None,
        client: Any | None = None,
    ) -> None:
        self._timeout = timeout_seconds
        self._budget = budget_seconds
        self._window = max(batch_window_seconds, 0.0)
        self._ids_limit = None if is_local_endpoint(endpoint) else MAX_EVENT_IDS_HEADER
        self._client = client if client is not None else _official_client(endpoint, transport)
        self._retry = RetryPolicy(
            attempts=attempts,
            budget_seconds=budget_seconds,
            logger=log,
            initial_wait=initial_wait,
            max_wait=max_wait,
            retry_on=DataManagerUnavailable,
            requested_wait=_requested_wait,
            sleep=sleep,
            uniform=jitter,
        )
        self._batcher = (
            Batcher(
                self._deliver,
                window_seconds=self._window,
                max_events=batch_max_events,
                budget_seconds=budget_seconds,
                attempt_seconds=timeout_seconds,
                not_taken=DataManagerUnavailable,
            )
            if self._window > 0
            else None
        )

    @property
    def longest_send_seconds(self) -> float:
        """The batch window, the budget, and one attempt (the client's timeout covers
        connect and read): a caller's longest wait, re-sends after refusals included."""
        return self._window + self._budget + self._timeout

    def send(self, measurement_id: str, body: bytes, event_id: str | None = None) -> None:
        """One event to ``ingest_events``, alone or in its stream's batch; see the module
        invariants."""
        request = json.loads(body)
        if self._batcher is None:
            fields = {"event_id": event_id}
            self._deliver(request, ga4_event_ids(request, event_id), self._budget, fields)
            return
        _request_message(request)  # an unmappable body is refused here, for its caller only
        self._batcher.send(measurement_id, request, event_id)

    def validate_remote(self, measurement_id: str, body: bytes) -> list[dict[str, Any]]:
        """No validate round trip on this path: the API refuses a bad request whole."""
        return []

    def _deliver(
        self,
        request: Mapping[str, Any],
        event_ids: Sequence[str | None],
        budget_seconds: float,
        log_fields: Mapping[str, Any],
    ) -> None:
        """One request with the retry policy, within ``budget_seconds``."""
        message = _request_message(request)
        self._retry.run(
            self._ingest,
            message,
            self._metadata(event_ids),
            budget_seconds=budget_seconds,
            log_fields=lambda: {**log_fields, "destination": "data_manager"},
        )

    def _metadata(self, event_ids: Sequence[str | None]) -> tuple[tuple[str, str], ...]:
        if not any(event_ids):
            return ()
        value = ",".join(quote(event_id or "", safe="") for event_id in event_ids)
        if self._ids_limit is not None and len(value) > self._ids_limit:
            return ()
        return ((EVENT_IDS_METADATA, value),)

    def _ingest(self, request: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        try:
            self._client.ingest_events(
                request=request, retry=None, timeout=self._timeout, metadata=metadata
            )
        except Exception as exc:
            raise translated(exc) from exc


def _request_message(request: Mapping[str, Any]) -> Any:
    """The plain dict as the client's ``IngestEventsRequest`` (unknown names refused
    here, loudly, rather than dropped)."""
    from google.ads.datamanager_v1 import IngestEventsRequest

    message = IngestEventsRequest()
    try:
        json_format.ParseDict(request, IngestEventsRequest.pb(message))
    except json_format.ParseError as exc:
        raise PermanentError("data_manager_unmappable", str(exc)) from None
    return message


def _official_client(endpoint: str, transport: str) -> Any:
    import google.auth
    from google.ads.datamanager_v1 import IngestionServiceClient
    from google.auth.credentials import AnonymousCredentials

    credentials: Any
    if is_local_endpoint(endpoint):
        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    else:
        credentials, _ = google.auth.default(scopes=[DATA_MANAGER_SCOPE])
    if transport == "grpc":
        endpoint = urlsplit(endpoint).netloc or endpoint
    options: dict[str, Any] = {"api_endpoint": endpoint}
    # The REST transport logs whole requests (user data hashes) at DEBUG.
    rest_log = logging.getLogger("google.ads.datamanager_v1")
    rest_log.setLevel(max(rest_log.getEffectiveLevel(), logging.INFO))
    return IngestionServiceClient(
        credentials=credentials, transport=transport, client_options=options
    )
