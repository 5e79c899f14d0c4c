"""HTTP adapter to GA4's Measurement Protocol: ``/mp/collect`` and ``/debug/mp/collect``.

Invariants:
- One ``requests.Session`` per instance (connection reuse), explicit (connect, read)
  timeouts on every request, no retries inside urllib3: the one retry policy
  (``shared.retry.transient_retry``) decides, with full-jitter backoff in seconds
  (``RETRY_INITIAL_WAIT`` doubling up to ``RETRY_MAX_WAIT``) or the server's
  ``Retry-After``, within the attempts and the time budget; then ``Ga4UnavailableError``
  (a ``TransientError``) is raised so Pub/Sub redelivers with its own backoff.
- A request to ``/mp/collect`` is retried only when GA4 certainly did not take it: the
  connection was never made (connect timeout, refused, name resolution, certificate
  refused in the handshake), or GA4 answered 5xx / 429. A request that may have reached
  GA4 without an answer coming back (read timeout, connection reset or closed after the
  request was written) is never sent again: ``Ga4OutcomeUnknown`` is raised at once and
  the caller decides. GA4 ingests ``/mp/collect`` on receipt and takes no idempotency key,
  so a retry there is how one event becomes two.
- ``/debug/mp/collect`` ingests nothing, so every network error there is retried.
- ``Retry-After`` (seconds or an HTTP date) is honoured as asked, uncapped, while it fits
  the remaining budget; one that does not fit ends the attempts at once (no sleeping past
  the function's deadline).
- One call lasts at most the budget plus one attempt, and one attempt at most
  connect timeout + read timeout: ``budget + min(3.05, timeout) + timeout`` must stay below
  the forward function's timeout, itself at most the push subscription's ack deadline.
- A 2xx is never retried. Any other 4xx is a ``PermanentError("ga4_rejected")``.
- The API secret travels in the query string (GA4 requires it there) and nowhere else:
  it is never logged, and every error text is redacted before it leaves this module.
- A request carrying one event names it in the ``X-Ga4-Stitch-Event-Id`` header
  (percent-encoded). GA4 ignores unknown headers; the local endpoint records it, so a
  replay, a proxy log or an operator can tell which event a request carried.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, quote_plus

import requests
import requests.utils
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from shared.errors import PermanentError, SettingsError, TransientError
from shared.logs import get_logger
from shared.ports import Ga4OutcomeUnknown
from shared.retry import retry_log, transient_retry

__all__ = [
    "EVENT_IDS_HEADER",
    "EVENT_ID_HEADER",
    "RETRY_INITIAL_WAIT",
    "RETRY_MAX_WAIT",
    "Ga4Client",
    "Ga4OutcomeUnknown",
    "Ga4UnavailableError",
    "never_reached_the_server",
    "retry_after_seconds",
]

log = get_logger("ga4_client")

COLLECT_PATH = "/mp/collect"
DEBUG_PATH = "/debug/mp/collect"
EVENT_ID_HEADER = "X-Ga4-Stitch-Event-Id"
EVENT_IDS_HEADER = "X-Ga4-Stitch-Event-Ids"
"""The Data Manager sender's counterpart: one event id per GA4 event of a batched request."""
MAX_CONNECT_TIMEOUT = 3.05
"""Just over a multiple of TCP's 3 s retransmission window, as requests recommends."""
RETRY_INITIAL_WAIT = 1.0
"""Ceiling of the first jittered wait, in seconds; each later ceiling doubles."""
RETRY_MAX_WAIT = 8.0
"""Largest ceiling of a jittered wait: with the default 4 attempts the waits' ceilings are
1, 2 and 4 s (7 s at most), well inside the default 20 s budget."""

_BEFORE_SENDING: tuple[type[BaseException], ...] = (
    urllib3.exceptions.NewConnectionError,  # refused, unreachable, name resolution
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.ClosedPoolError,
    ssl.SSLCertVerificationError,  # the handshake refused GA4's certificate
)


class Ga4UnavailableError(TransientError):
    """GA4 did not take the request (no connection, 5xx, 429); a later attempt may."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def retry_after_seconds(header: str | None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` asks for, in seconds (never negative), uncapped: the
    retry policy compares it with the remaining budget. Unreadable values give None (the
    jittered backoff applies)."""
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        try:
            moment = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything it wraps: ``args``, urllib3's ``reason``, the chain."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [*current.args, getattr(current, "reason", None)]
        linked += [current.__cause__, current.__context__]
        pending.extend(item for item in linked if isinstance(item, BaseException))


def never_reached_the_server(error: requests.RequestException) -> bool:
    """True only when the request certainly never left this process for GA4.

    ``ConnectTimeout``, and a ``ConnectionError`` caused by a connection that was never
    made (urllib3's ``NewConnectionError``, which covers refused, unreachable and name
    resolution, or a certificate refused during the handshake). Read timeouts, resets
    and disconnects after the request was written are False: GA4 may have taken it.
    Errors requests raises before opening anything (invalid URL, schema) are True.
    """
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(
        error,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ),
    ):
        return True
    if not isinstance(error, requests.exceptions.ConnectionError):
        return False
    return any(isinstance(cause, _BEFORE_SENDING) for cause in _causes(error))


def _read_environment_once(session: requests.Session, endpoint: str) -> None:
    """Resolve what ``requests`` would read from the environment on every request (the
    proxies for ``endpoint``, ``NO_PROXY`` applied, and a CA bundle named by
    ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``) once, and stop it reading the
    environment per request. Per request that reading walks the whole of ``os.environ``
    twice and was a quarter of the forward function's CPU per event; an instance's
    environment does not change while it runs. Only ``.netrc`` credentials are no longer
    looked up (GA4 authenticates by the API secret, never by netrc)."""
    if not session.trust_env:
        return
    session.proxies.update(requests.utils.get_environ_proxies(endpoint))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and session.verify is True:
        session.verify = bundle
    session.trust_env = False


def _requested_wait(error: BaseException) -> float | None:
    return error.retry_after if isinstance(error, Ga4UnavailableError) else None


class Ga4Client:
    """``Ga4Sender`` over HTTP; ``sleep``, ``jitter`` and ``session`` are injectable for tests.

    ``jitter(low, high)`` draws each backoff wait (default ``random.uniform``).
    """

    def __init__(
        self,
        *,
        endpoint: str,
        api_secret: str,
        stream_secrets: Mapping[str, str] | None = None,
        timeout_seconds: float = 5.0,
        attempts: int = 4,
        budget_seconds: float = 20.0,
        initial_wait: float = RETRY_INITIAL_WAIT,
        max_wait: float = RETRY_MAX_WAIT,
        sleep: Callable[[float], None] | None = None,
        jitter: Callable[[float, float], float] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._default_secret = api_secret
        self._secrets = dict(stream_secrets or {})
        self._timeout = (min(timeout_seconds, MAX_CONNECT_TIMEOUT), timeout_seconds)
        self._budget = budget_seconds
        self._retrying = transient_retry(
            attempts=attempts,
            budget_seconds=budget_seconds,
            logger=log,
            initial_wait=initial_wait,
            max_wait=max_wait,
            retry_on=Ga4UnavailableError,
            requested_wait=_requested_wait,
            sleep=sleep,
            uniform=jitter,
        )
        self._session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        _read_environment_once(self._session, self._endpoint)
        # urllib3 logs full request lines (query string, so the API secret) at DEBUG.
        pool_log = logging.getLogger("urllib3.connectionpool")
        pool_log.setLevel(max(pool_log.getEffectiveLevel(), logging.INFO))

    @property
    def longest_send_seconds(self) -> float:
        """The longest one ``send`` can take: no attempt starts after the budget, and one
        attempt lasts at most connect timeout + read timeout (name resolution aside).
        Invariant for the deployment: this (28.05 s by default) plus the ledger writes
        stays below the function's timeout, itself at most the ack deadline."""
        return self._budget + self._timeout[0] + self._timeout[1]

    def send(self, measurement_id: str, body: bytes, event_id: str | None = None) -> None:
        """One event to ``/mp/collect``; ``Ga4OutcomeUnknown`` if it may have been taken."""
        retrying = self._retrying.copy(before_sleep=retry_log(log, {"event_id": event_id}))
        retrying(self._post, COLLECT_PATH, measurement_id, body, event_id)

    def validate_remote(self, measurement_id: str, body: bytes) -> list[dict[str, Any]]:
        response = self._retrying.copy()(self._post, DEBUG_PATH, measurement_id, body)
        try:
            messages = response.json().get("validationMessages", [])
        except (ValueError, AttributeError):
            raise Ga4UnavailableError("the GA4 validation server did not answer JSON") from None
        return [message for message in messages if isinstance(message, dict)]

    def close(self) -> None:
        self._session.close()

    def _secret(self, measurement_id: str) -> str:
        secret = self._secrets.get(measurement_id) or self._default_secret
        if not secret:
            raise SettingsError(f"no GA4 API secret for measurement id {measurement_id}")
        return secret

    def _redact(self, text: str) -> str:
        for secret in {self._default_secret, *self._secrets.values()}:
            if secret:
                text = text.replace(secret, "***").replace(quote_plus(secret), "***")
        return text

    def _post(
        self, path: str, measurement_id: str, body: bytes, event_id: str | None = None
    ) -> requests.Response:
        """One attempt, its outcome translated into our error tree."""
        headers = {"Content-Type": "application/json"}
        if event_id:
            headers[EVENT_ID_HEADER] = quote(event_id, safe="")
        try:
            response = self._session.post(
                f"{self._endpoint}{path}",
                params={
                    "measurement_id": measurement_id,
                    "api_secret": self._secret(measurement_id),
                },
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            detail = self._redact(f"{type(exc).__name__}: {exc}")
            if path == COLLECT_PATH and not never_reached_the_server(exc):
                raise Ga4OutcomeUnknown(
                    f"no answer from GA4 on {path}; it may have taken the request: {detail}"
                ) from None
            raise Ga4UnavailableError(f"GA4 unreachable on {path}: {detail}") from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status == 429 or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            asked = "" if wait is None else f" (Retry-After {wait:g} s)"
            raise Ga4UnavailableError(f"GA4 answered HTTP {status} on {path}{asked}", wait)
        raise PermanentError("ga4_rejected", f"GA4 answered HTTP {status} on {path}")
