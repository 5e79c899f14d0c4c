"""HTTP adapter to GA4's Measurement Protocol: ``/mp/collect`` and ``/debug/mp/collect``.

Invariants:
- One ``requests.Session`` per instance (connection reuse), explicit (connect, read)
  timeouts on every request, no retries inside urllib3: the one retry policy
  (``shared.retry.transient_retry``) retries network errors, 5xx and 429 only, with
  exponential backoff and jitter (or the server's ``Retry-After``, capped), bounded by
  attempts and a time budget, then raises ``TransientError`` so Pub/Sub redelivers.
- A 2xx is never retried. Any other 4xx is a ``PermanentError("ga4_rejected")``.
- The API secret travels in the query string (GA4 requires it there) and nowhere else:
  it is never logged, and every error text is redacted before it leaves this module.
- A request carrying one event names it in the ``X-Ga4-Stitch-Event-Id`` header
  (percent-encoded). GA4 ignores unknown headers; the local endpoint records it, so a
  replay, a proxy log or an operator can tell which event a request carried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import requests
import tenacity
from requests.adapters import HTTPAdapter

from shared.errors import PermanentError, SettingsError, TransientError
from shared.logs import get_logger
from shared.retry import transient_retry

__all__ = ["EVENT_ID_HEADER", "Ga4Client", "Ga4UnavailableError", "retry_after_seconds"]

log = get_logger("ga4_client")

COLLECT_PATH = "/mp/collect"
DEBUG_PATH = "/debug/mp/collect"
EVENT_ID_HEADER = "X-Ga4-Stitch-Event-Id"
MAX_CONNECT_TIMEOUT = 3.05
"""Just over a multiple of TCP's 3 s retransmission window, as requests recommends."""


class Ga4UnavailableError(TransientError):
    """GA4 did not take the request (network error, 5xx, 429); a later attempt may."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def retry_after_seconds(header: str | None, cap: float) -> float | None:
    """A ``Retry-After`` given in seconds, capped; HTTP dates fall back to backoff."""
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        return None
    return min(max(seconds, 0.0), cap)


def _honour_retry_after(base: Callable[[tenacity.RetryCallState], float]) -> Any:
    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, Ga4UnavailableError) and error.retry_after is not None:
            return error.retry_after
        return base(state)

    return wait


class Ga4Client:
    """``Ga4Sender`` over HTTP; ``sleep`` and ``session`` are injectable for tests."""

    def __init__(
        self,
        *,
        endpoint: str,
        api_secret: str,
        stream_secrets: Mapping[str, str] | None = None,
        timeout_seconds: float = 5.0,
        attempts: int = 4,
        budget_seconds: float = 20.0,
        max_retry_after: float = 5.0,
        sleep: Callable[[float], None] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._default_secret = api_secret
        self._secrets = dict(stream_secrets or {})
        self._timeout = (min(timeout_seconds, MAX_CONNECT_TIMEOUT), timeout_seconds)
        self._max_retry_after = max_retry_after
        retrying = transient_retry(
            attempts=attempts,
            budget_seconds=budget_seconds,
            logger=log,
            retry_on=Ga4UnavailableError,
            sleep=sleep,
        )
        self._retrying = retrying.copy(wait=_honour_retry_after(retrying.wait))
        self._session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        # urllib3 logs full request lines (query string, so the API secret) at DEBUG.
        pool_log = logging.getLogger("urllib3.connectionpool")
        pool_log.setLevel(max(pool_log.getEffectiveLevel(), logging.INFO))

    def send(self, measurement_id: str, body: bytes, event_id: str | None = None) -> None:
        self._retrying.copy()(self._post, COLLECT_PATH, measurement_id, body, event_id)

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
            raise Ga4UnavailableError(f"GA4 unreachable on {path}: {detail}") from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status == 429 or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"), self._max_retry_after)
            raise Ga4UnavailableError(f"GA4 answered HTTP {status} on {path}", retry_after=wait)
        raise PermanentError("ga4_rejected", f"GA4 answered HTTP {status} on {path}")
