"""The GA4 HTTP client against the real local GA4 endpoint, and the endpoint itself.

No test patches urllib3: faults are real (a slow endpoint, a closed port, a server that
resets or hangs up after reading the request, a TLS server whose certificate is not
trusted, a proxy, a redirect) or raised by a pool manager whose ``urlopen`` raises them
where urllib3 itself raises them with ``retries=False``.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
import urllib3
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    LocationParseError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError

from ga4_stitch.emulators import free_port
from ga4_stitch.ga4_endpoint import LocalGa4
from shared.adapters import ga4_http
from shared.adapters.ga4_http import (
    Ga4Client,
    Ga4OutcomeUnknown,
    Ga4UnavailableError,
    never_reached_the_server,
    retry_after_seconds,
)
from shared.adapters.origin_pool import OriginPool
from shared.domain.validation import encode_body
from shared.errors import PermanentError, TransientError

SECRET = "s3cr3t-Api+Key/="
VALID = encode_body({"client_id": "1.2", "events": [{"name": "page_view", "params": {}}]})


@pytest.fixture
def ga4(tmp_path: Path) -> Iterator[LocalGa4]:
    with LocalGa4(tmp_path / "ga4.ndjson") as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client_for(url: str, sleeps: list[float], **options: Any) -> Ga4Client:
    defaults: dict[str, Any] = {"timeout_seconds": 2.0, "attempts": 4, "budget_seconds": 20.0}
    defaults.update(options)
    return Ga4Client(endpoint=url, api_secret=SECRET, sleep=sleeps.append, **defaults)


def highest(low: float, high: float) -> float:
    """A jitter source that always draws the ceiling, so waits are deterministic."""
    return high


def settled_requests(ga4: LocalGa4, expected: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The endpoint's records once ``expected`` have arrived (a late answer is recorded
    when it is sent), plus a short grace period that would catch a stray retry."""
    deadline = time.monotonic() + timeout
    while len(ga4.requests()) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    return ga4.requests()


def test_a_2xx_is_sent_once_and_never_retried(ga4: LocalGa4, sleeps: list[float]) -> None:
    """One request, one record, no sleep."""
    client_for(ga4.url, sleeps).send("G-TEST", VALID)
    (record,) = ga4.requests()
    assert record["path"] == "/mp/collect"
    assert record["measurement_id"] == "G-TEST"
    assert record["status"] == 204
    assert record["body"] == json.loads(VALID)
    assert sleeps == []


def test_a_503_is_retried_then_succeeds(ga4: LocalGa4, sleeps: list[float]) -> None:
    """Two failures, then the third attempt lands; backoff slept twice."""
    ga4.fail_next(2, status=503)
    client_for(ga4.url, sleeps).send("G-TEST", VALID)
    assert [r["status"] for r in ga4.requests()] == [503, 503, 204]
    assert len(sleeps) == 2
    assert len(ga4.accepted()) == 1


def test_503_waits_grow_in_seconds_with_full_jitter(ga4: LocalGa4, sleeps: list[float]) -> None:
    """Ceilings 1, 2, 4 s (doubling, capped at 8 s); each wait is drawn below its ceiling."""
    ga4.fail_next(3, status=503)
    client_for(ga4.url, sleeps, jitter=highest).send("G-TEST", VALID)
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(ga4.accepted()) == 1

    drawn: list[float] = []
    ga4.fail_next(3, status=503)
    client_for(ga4.url, drawn, jitter=random.Random(7).uniform).send("G-TEST", VALID)
    assert len(drawn) == 3
    assert all(0.0 <= wait <= ceiling for wait, ceiling in zip(drawn, [1.0, 2.0, 4.0], strict=True))
    assert drawn != [1.0, 2.0, 4.0]


def test_the_time_budget_ends_the_retries_before_the_attempt_count(
    ga4: LocalGa4, sleeps: list[float]
) -> None:
    """Budget 10 s: after waits of 1 + 2 + 4 s the next (8 s) would end past it, so the
    fourth failure is raised at once although six attempts remain."""
    ga4.fail_next(10, status=503)
    with pytest.raises(Ga4UnavailableError, match="HTTP 503"):
        client_for(ga4.url, sleeps, attempts=10, budget_seconds=10.0, jitter=highest).send(
            "G-TEST", VALID
        )
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(ga4.requests()) == 4


def test_a_429_waits_as_long_as_retry_after_asks_within_the_budget(
    ga4: LocalGa4, sleeps: list[float]
) -> None:
    """Retry-After replaces the jittered wait, uncapped, while it fits the budget."""
    ga4.fail_next(1, status=429, retry_after=1)
    ga4.fail_next(1, status=429, retry_after=12)
    client_for(ga4.url, sleeps, budget_seconds=20.0).send("G-TEST", VALID)
    assert sleeps == [1.0, 12.0]
    assert [r["status"] for r in ga4.requests()] == [429, 429, 204]


def test_a_retry_after_beyond_the_budget_gives_up_at_once(
    ga4: LocalGa4, sleeps: list[float]
) -> None:
    """No sleeping past the deadline: one request, no wait, a TransientError naming the
    wait, so Pub/Sub's own backoff takes over."""
    ga4.fail_next(1, status=429, retry_after=30)
    with pytest.raises(Ga4UnavailableError, match=r"HTTP 429.*Retry-After 30 s"):
        client_for(ga4.url, sleeps, budget_seconds=20.0).send("G-TEST", VALID)
    assert sleeps == []
    assert len(ga4.requests()) == 1


def test_a_retry_after_that_no_longer_fits_the_remaining_budget_gives_up(
    ga4: LocalGa4, sleeps: list[float]
) -> None:
    """8 s fits a 15 s budget once; the second 8 s would end at 16 s, so it is not slept."""
    ga4.fail_next(2, status=503, retry_after=8)
    with pytest.raises(Ga4UnavailableError):
        client_for(ga4.url, sleeps, budget_seconds=15.0).send("G-TEST", VALID)
    assert sleeps == [8.0]
    assert len(ga4.requests()) == 2


def test_a_read_timeout_sends_exactly_one_request_and_reports_an_unknown_outcome(
    ga4: LocalGa4, sleeps: list[float]
) -> None:
    """GA4 took the request but answered late: never sent again by this delivery."""
    ga4.delay_next(1, seconds=0.8)
    with pytest.raises(Ga4OutcomeUnknown, match="may have taken") as caught:
        client_for(ga4.url, sleeps, timeout_seconds=0.3).send("G-TEST", VALID, event_id="e-1")
    assert isinstance(caught.value, TransientError)
    assert not isinstance(caught.value, Ga4UnavailableError)
    assert SECRET not in str(caught.value)
    assert sleeps == []
    (record,) = settled_requests(ga4, 1)
    assert (record["event_id"], record["status"]) == ("e-1", 204)


def test_a_read_timeout_on_the_debug_endpoint_is_retried(
    ga4: LocalGa4, sleeps: list[float]
) -> None:
    """/debug/mp/collect ingests nothing, so a lost answer there is simply asked again."""
    ga4.delay_next(1, seconds=0.8)
    assert client_for(ga4.url, sleeps, timeout_seconds=0.3).validate_remote("G-TEST", VALID) == []
    assert len(sleeps) == 1


class HangUpServer:
    """Reads one whole HTTP request per connection, then resets the connection (RST) or
    closes it without answering: the request reached the server, the answer never came."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.received = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def __enter__(self) -> HangUpServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                self._read_request(connection)
                self.received += 1
                if self.mode == "reset":
                    linger = struct.pack("ii", 1, 0)
                    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)

    @staticmethod
    def _read_request(connection: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += connection.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += connection.recv(65536)


@pytest.mark.parametrize("mode", ["reset", "close"])
def test_a_connection_lost_after_the_request_was_sent_is_not_retried(
    sleeps: list[float], mode: str
) -> None:
    """A reset or a hang-up after the body was written: outcome unknown, one request."""
    with HangUpServer(mode) as server:
        with pytest.raises(Ga4OutcomeUnknown):
            client_for(server.url, sleeps).send("G-TEST", VALID)
        time.sleep(0.2)
        assert server.received == 1
    assert sleeps == []


def test_a_refused_connection_is_retried_until_the_bounds(sleeps: list[float]) -> None:
    """Nothing listens: the request never left, so every attempt is made, then a
    TransientError GA4 certainly did not take."""
    with pytest.raises(Ga4UnavailableError, match="unreachable"):
        client_for(f"http://127.0.0.1:{free_port()}", sleeps, attempts=3).send("G-TEST", VALID)
    assert len(sleeps) == 2


class FailFirst(urllib3.PoolManager):
    """A pool manager that raises the given errors on the first requests, where urllib3's
    own ``urlopen`` raises them, then sends for real."""

    def __init__(self, errors: list[Exception]) -> None:
        super().__init__(retries=False)
        self.errors = errors
        self.calls = 0

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return super().urlopen(method, url, redirect=redirect, **kw)


# Errors shaped as urllib3 raises them with retries=False: the error itself, no MaxRetryError.


def connect_timeout() -> Exception:
    return ConnectTimeoutError(None, "Connection to 127.0.0.1 timed out. (connect timeout=3.05)")


def refused() -> Exception:
    return NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")  # type: ignore[arg-type]


def name_not_resolved() -> Exception:
    return NameResolutionError("www.google-analytics.com", None, socket.gaierror(-2, "no"))  # type: ignore[arg-type]


def certificate_refused() -> Exception:
    return Urllib3SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed"))


def proxy_refused() -> Exception:
    return ProxyError("Unable to connect to proxy", refused())


def pool_closed() -> Exception:
    return ClosedPoolError(None, "Pool is closed.")  # type: ignore[arg-type]


def unusable_url() -> Exception:
    return LocationParseError("http://[::1/mp/collect")


def read_timeout() -> Exception:
    return ReadTimeoutError(None, "/mp/collect", "Read timed out. (read timeout=5.0)")  # type: ignore[arg-type]


def reset_after_sending() -> Exception:
    return ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))


def closed_after_sending() -> Exception:
    cause = http.client.RemoteDisconnected("Remote end closed connection without response")
    return ProtocolError("Connection aborted.", cause)


def answer_cut_short() -> Exception:
    return ProtocolError("Connection broken: IncompleteRead(0 bytes read, 2 more expected)")


def tls_broken_mid_answer() -> Exception:
    return Urllib3SSLError(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))


NEVER_SENT = [
    connect_timeout,
    refused,
    name_not_resolved,
    certificate_refused,
    proxy_refused,
    pool_closed,
    unusable_url,
]
MAY_HAVE_LEFT = [
    read_timeout,
    reset_after_sending,
    closed_after_sending,
    answer_cut_short,
    tls_broken_mid_answer,
]


@pytest.mark.parametrize("error", NEVER_SENT)
def test_a_connection_never_made_is_retried_and_lands_once(
    ga4: LocalGa4, sleeps: list[float], error: Any
) -> None:
    """Connect timeout, refused, DNS, certificate, proxy, closed pool: retried, lands once."""
    pool = FailFirst([error(), error()])
    client = Ga4Client(
        endpoint=ga4.url, api_secret=SECRET, sleep=sleeps.append, jitter=highest, pool=pool
    )
    client.send("G-TEST", VALID, event_id="e-1")
    assert pool.calls == 3
    assert sleeps == [1.0, 2.0]
    assert [r["event_id"] for r in ga4.accepted()] == ["e-1"]


@pytest.mark.parametrize("error", MAY_HAVE_LEFT)
def test_an_error_after_the_request_may_have_left_is_never_retried(
    ga4: LocalGa4, sleeps: list[float], error: Any
) -> None:
    """One attempt, Ga4OutcomeUnknown, no wait."""
    pool = FailFirst([error()])
    client = Ga4Client(endpoint=ga4.url, api_secret=SECRET, sleep=sleeps.append, pool=pool)
    with pytest.raises(Ga4OutcomeUnknown):
        client.send("G-TEST", VALID)
    assert (pool.calls, sleeps) == (1, [])


@pytest.mark.parametrize("error", MAY_HAVE_LEFT)
def test_every_network_error_on_the_debug_endpoint_is_retried(
    ga4: LocalGa4, sleeps: list[float], error: Any
) -> None:
    """The debug endpoint ingests nothing: even an answer lost after sending is asked again."""
    pool = FailFirst([error()])
    client = Ga4Client(endpoint=ga4.url, api_secret=SECRET, sleep=sleeps.append, pool=pool)
    assert client.validate_remote("G-TEST", VALID) == []
    assert (pool.calls, len(sleeps)) == (2, 1)


def requests_connect_timeout() -> Exception:
    reason = ConnectTimeoutError(None, "connect timed out")
    return requests.exceptions.ConnectTimeout(MaxRetryError(None, "/v1/events", reason))  # type: ignore[arg-type]


def requests_refused() -> Exception:
    reason = NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/v1/events", reason))  # type: ignore[arg-type]


def requests_name_not_resolved() -> Exception:
    reason = NameResolutionError("datamanager.googleapis.com", None, socket.gaierror(-2, "no"))  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/v1/events", reason))  # type: ignore[arg-type]


def requests_certificate_refused() -> Exception:
    reason = Urllib3SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    return requests.exceptions.SSLError(MaxRetryError(None, "/v1/events", reason))  # type: ignore[arg-type]


def requests_read_timeout() -> Exception:
    return requests.exceptions.ReadTimeout(ReadTimeoutError(None, "/v1/events", "read timed out"))  # type: ignore[arg-type]


def requests_reset_after_sending() -> Exception:
    return requests.exceptions.ConnectionError(reset_after_sending())


def requests_tls_broken_mid_answer() -> Exception:
    reason = tls_broken_mid_answer()
    return requests.exceptions.SSLError(MaxRetryError(None, "/v1/events", reason))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "never_sent"),
    [
        (requests_connect_timeout, True),
        (requests_refused, True),
        (requests_name_not_resolved, True),
        (requests_certificate_refused, True),
        (lambda: requests.exceptions.InvalidURL("bad"), True),
        (requests_read_timeout, False),
        (requests_reset_after_sending, False),
        (requests_tls_broken_mid_answer, False),
        (lambda: requests.exceptions.ChunkedEncodingError("cut"), False),
    ],
)
def test_the_requests_classifier_counts_only_a_connection_never_made_as_never_sent(
    error: Any, never_sent: bool
) -> None:
    """``never_reached_the_server`` (the Data Manager REST transport's), on requests' errors."""
    assert never_reached_the_server(error()) is never_sent


Answer = tuple[int, dict[str, str], bytes]


class TinyServer:
    """A real HTTP (or, given a TLS context, HTTPS) server: each request it reads whole
    is recorded (``target``: the request line's target; ``headers``, by lower-case name;
    ``peer``: the client's address, one per connection) and answered by
    ``answer(target, headers, body)``. A refused TLS handshake records nothing."""

    def __init__(
        self,
        answer: Callable[[str, dict[str, str], bytes], Answer],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.seen: list[dict[str, Any]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the target carries the test secret."""

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                seen.append({"target": self.path, "headers": headers, "peer": self.client_address})
                status, extra, content = answer(self.path, headers, body)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TinyServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)


def accept(target: str, headers: dict[str, str], body: bytes) -> Answer:
    return 204, {}, b""


@pytest.fixture
def tls_server(certificates: dict[str, Path]) -> Iterator[TinyServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates["cert"], certificates["key"])
    with TinyServer(accept, tls=context) as server:
        yield server


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy and no CA bundle from the machine running the tests."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return monkeypatch


def test_a_certificate_refused_in_the_handshake_is_retried_and_never_sent(
    tls_server: TinyServer, sleeps: list[float], environment: pytest.MonkeyPatch
) -> None:
    """An untrusted certificate ends the connection before the request is written, so
    every attempt is made and the server never reads one."""
    with pytest.raises(Ga4UnavailableError, match=r"unreachable.*CERTIFICATE_VERIFY_FAILED"):
        client_for(tls_server.url, sleeps, attempts=3).send("G-TEST", VALID)
    assert len(sleeps) == 2
    assert tls_server.seen == []


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_ca_bundle_the_environment_names_is_trusted(
    tls_server: TinyServer,
    sleeps: list[float],
    environment: pytest.MonkeyPatch,
    certificates: dict[str, Path],
    variable: str,
) -> None:
    """The bundle is read when the client is built and verifies GA4's certificate."""
    environment.setenv(variable, str(certificates["ca"]))
    client = client_for(tls_server.url, sleeps)
    environment.delenv(variable)
    client.send("G-TEST", VALID, event_id="e-tls")
    (request,) = tls_server.seen
    assert request["target"].startswith("/mp/collect?measurement_id=G-TEST&api_secret=")
    assert request["headers"]["x-ga4-stitch-event-id"] == "e-tls"


def forward_to_target(target: str, headers: dict[str, str], body: bytes) -> Answer:
    """A forwarding proxy's answer: the request sent on to the absolute URL it names."""
    url = urlsplit(target)
    connection = http.client.HTTPConnection(url.netloc, timeout=5)
    kept = {name: value for name, value in headers.items() if name != "proxy-authorization"}
    connection.request("POST", f"{url.path}?{url.query}", body=body, headers=kept)
    answer = connection.getresponse()
    content = answer.read()
    connection.close()
    return answer.status, {}, content


def test_the_proxy_is_resolved_once_and_carries_every_request(
    ga4: LocalGa4, sleeps: list[float], environment: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY read when the client is built (credentials sent to the proxy only),
    still used after the environment changes; the event lands once through it."""
    with TinyServer(forward_to_target) as proxy:
        address = proxy.url.removeprefix("http://")
        environment.setenv("HTTP_PROXY", f"http://relay:p%40ss@{address}")
        client = client_for(ga4.url, sleeps)
        environment.delenv("HTTP_PROXY")
        environment.setenv("NO_PROXY", "*")
        client.send("G-TEST", VALID, event_id="e-proxied")
    (request,) = proxy.seen
    assert request["target"].startswith(f"{ga4.url}/mp/collect?measurement_id=G-TEST")
    expected = base64.b64encode(b"relay:p@ss").decode()
    assert request["headers"]["proxy-authorization"] == f"Basic {expected}"
    assert [r["event_id"] for r in ga4.accepted()] == ["e-proxied"]


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
def test_no_proxy_sends_to_the_endpoint_directly(
    ga4: LocalGa4, sleeps: list[float], environment: pytest.MonkeyPatch, no_proxy: str
) -> None:
    """An endpoint NO_PROXY names bypasses the proxy the environment sets."""
    with TinyServer(forward_to_target) as proxy:
        environment.setenv("HTTP_PROXY", proxy.url)
        environment.setenv("NO_PROXY", no_proxy)
        client_for(ga4.url, sleeps).send("G-TEST", VALID, event_id="e-direct")
    assert proxy.seen == []
    assert [r["event_id"] for r in ga4.accepted()] == ["e-direct"]


def test_a_redirect_is_not_followed_and_is_rejected(ga4: LocalGa4, sleeps: list[float]) -> None:
    """A 307 to GA4 itself: the body is not sent there, one request, ga4_rejected."""

    def redirect(target: str, headers: dict[str, str], body: bytes) -> Answer:
        return 307, {"Location": f"{ga4.url}{target}"}, b""

    with TinyServer(redirect) as server, pytest.raises(PermanentError) as caught:
        client_for(server.url, sleeps).send("G-TEST", VALID)
    assert caught.value.reason == "ga4_rejected"
    assert len(server.seen) == 1
    assert ga4.requests() == []
    assert sleeps == []


def test_a_retry_after_given_as_an_http_date_is_waited_until_that_moment(
    sleeps: list[float],
) -> None:
    """503 with Retry-After five seconds from now as a date: one wait of about 5 s, then
    the retry lands."""
    answers = iter([(503, {"Retry-After": formatdate(time.time() + 5, usegmt=True)}, b"")])

    def once_unavailable(target: str, headers: dict[str, str], body: bytes) -> Answer:
        return next(answers, (204, {}, b""))

    with TinyServer(once_unavailable) as server:
        client_for(server.url, sleeps).send("G-TEST", VALID)
    assert len(server.seen) == 2
    (wait,) = sleeps
    assert 3.5 < wait <= 5.0


def test_close_closes_the_pooled_connections(ga4: LocalGa4, sleeps: list[float]) -> None:
    """After ``close`` no connection is kept; a later send opens a new one."""
    pool = urllib3.PoolManager(retries=False)
    client = Ga4Client(endpoint=ga4.url, api_secret=SECRET, sleep=sleeps.append, pool=pool)
    client.send("G-TEST", VALID)
    assert len(pool.pools) == 1
    client.close()
    assert len(pool.pools) == 0
    client.send("G-TEST", VALID)
    assert len(ga4.accepted()) == 2


def test_each_query_string_is_encoded_once_and_every_send_shares_one_connection(
    sleeps: list[float], environment: pytest.MonkeyPatch
) -> None:
    """Repeated sends of a stream carry the same path and query (its own secret, the
    default for others), encoded once per stream and path, over one kept connection."""
    encoded: list[dict[str, str]] = []
    real_urlencode = ga4_http.urlencode

    def counting(query: dict[str, str]) -> str:
        encoded.append(query)
        return real_urlencode(query)

    environment.setattr(ga4_http, "urlencode", counting)

    def answer(target: str, headers: dict[str, str], body: bytes) -> Answer:
        if target.startswith("/debug/"):
            return 200, {"Content-Type": "application/json"}, b'{"validationMessages": []}'
        return 204, {}, b""

    with TinyServer(answer) as server:
        client = Ga4Client(
            endpoint=server.url,
            api_secret="default-secret",
            stream_secrets={"G-SHOP": "shop-secret"},
            sleep=sleeps.append,
        )
        client.send("G-SHOP", VALID, event_id="e-1")
        client.send("G-SHOP", VALID, event_id="e-2")
        client.send("G-OTHER", VALID)
        client.send("G-OTHER", VALID, event_id="e-3")
        assert client.validate_remote("G-SHOP", VALID) == []
        client.send("G-SHOP", VALID)
    shop = "/mp/collect?measurement_id=G-SHOP&api_secret=shop-secret"
    other = "/mp/collect?measurement_id=G-OTHER&api_secret=default-secret"
    debug = "/debug/mp/collect?measurement_id=G-SHOP&api_secret=shop-secret"
    assert [r["target"] for r in server.seen] == [shop, shop, other, other, debug, shop]
    assert [r["headers"].get("x-ga4-stitch-event-id") for r in server.seen] == [
        "e-1",
        "e-2",
        None,
        "e-3",
        None,
        None,
    ]
    assert {r["headers"]["content-type"] for r in server.seen} == {"application/json"}
    assert [query["measurement_id"] for query in encoded] == ["G-SHOP", "G-OTHER", "G-SHOP"]
    assert len({r["peer"] for r in server.seen}) == 1
    assert sleeps == []


def test_after_close_the_next_send_opens_a_new_connection(sleeps: list[float]) -> None:
    """The endpoint's pool is kept between sends, and dropped by ``close``."""
    with TinyServer(accept) as server:
        client = Ga4Client(endpoint=server.url, api_secret=SECRET, sleep=sleeps.append)
        client.send("G-TEST", VALID)
        client.send("G-TEST", VALID)
        client.close()
        client.send("G-TEST", VALID)
    first, second, third = (r["peer"] for r in server.seen)
    assert first == second != third


def test_5xx_forever_raises_transient_after_the_attempt_budget(
    ga4: LocalGa4, sleeps: list[float]
) -> None:
    """Bounded: exactly `attempts` requests, then TransientError so Pub/Sub redelivers."""
    ga4.fail_next(10, status=500)
    with pytest.raises(TransientError, match="HTTP 500"):
        client_for(ga4.url, sleeps, attempts=3).send("G-TEST", VALID)
    assert len(ga4.requests()) == 3


@pytest.mark.parametrize("status", [400, 403, 404, 413])
def test_other_4xx_is_permanent_and_not_retried(
    ga4: LocalGa4, sleeps: list[float], status: int
) -> None:
    """GA4 refusing the request will not change its mind: ga4_rejected, one attempt."""
    ga4.fail_next(1, status=status)
    with pytest.raises(PermanentError) as caught:
        client_for(ga4.url, sleeps).send("G-TEST", VALID)
    assert caught.value.reason == "ga4_rejected"
    assert len(ga4.requests()) == 1
    assert sleeps == []


def test_the_secret_never_reaches_logs_errors_or_records(
    ga4: LocalGa4, sleeps: list[float], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Redacted from network errors and retry logs; the endpoint never records it."""
    caplog.set_level(logging.DEBUG)
    client_for(ga4.url, sleeps).send("G-TEST", VALID)
    dead = client_for(f"http://127.0.0.1:{free_port()}", sleeps, attempts=2)
    with pytest.raises(TransientError) as caught:
        dead.send("G-TEST", VALID)
    assert "unreachable" in str(caught.value)
    texts = [str(caught.value), repr(caught.value), caplog.text]
    texts.append((tmp_path / "ga4.ndjson").read_text())
    for text in texts:
        assert SECRET not in text
        assert quote(SECRET, safe="") not in text
        assert "s3cr3t" not in text


def test_each_stream_uses_its_own_secret(ga4: LocalGa4, sleeps: list[float]) -> None:
    """Routed streams carry their own API secret; others use the default one."""
    urls: list[str] = []

    class Recording(urllib3.PoolManager):
        def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:
            urls.append(url)
            return super().urlopen(method, url, redirect=redirect, **kw)

    client = Ga4Client(
        endpoint=ga4.url,
        api_secret="default-secret",
        stream_secrets={"G-SHOP": "shop-secret"},
        sleep=sleeps.append,
        pool=Recording(retries=False),
    )
    client.send("G-SHOP", VALID)
    client.send("G-OTHER", VALID)
    assert "api_secret=shop-secret" in urls[0]
    assert "api_secret=default-secret" in urls[1]
    assert len(ga4.accepted()) == 2


@pytest.mark.parametrize("event_id", ["e0000001.1a2b3c4d", "ünïcode/id with spaces\r\n"])
def test_the_event_id_header_reaches_the_endpoint_and_is_recorded(
    ga4: LocalGa4, sleeps: list[float], event_id: str
) -> None:
    """Any event id survives the header (percent-encoded) and lands in the record."""
    client_for(ga4.url, sleeps).send("G-TEST", VALID, event_id=event_id)
    (record,) = ga4.requests()
    assert record["event_id"] == event_id


def test_a_request_without_an_event_id_is_recorded_with_none(
    ga4: LocalGa4, sleeps: list[float]
) -> None:
    """No header, no id: the record says null rather than guessing."""
    client_for(ga4.url, sleeps).send("G-TEST", VALID)
    (record,) = ga4.requests()
    assert record["event_id"] is None


def test_validate_remote_returns_ga4s_validation_messages(
    ga4: LocalGa4, sleeps: list[float]
) -> None:
    """The debug endpoint's messages come back as GA4 dicts; a valid body gives none."""
    client = client_for(ga4.url, sleeps)
    assert client.validate_remote("G-TEST", VALID) == []
    bad = encode_body({"client_id": "1.2", "events": [{"name": "_badEventName", "params": {}}]})
    (message,) = client.validate_remote("G-TEST", bad)
    assert message["validationCode"] == "NAME_INVALID"
    assert message["fieldPath"] == "events"
    assert ga4.accepted() == []
    assert {r["path"] for r in ga4.requests()} == {"/debug/mp/collect"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("2", 2.0),
        ("0.5", 0.5),
        ("600", 600.0),
        ("-3", 0.0),
        ("nan", None),
        ("Wed, 21 Oct", None),
        (formatdate(1_000_045, usegmt=True), 45.0),
        (formatdate(999_000, usegmt=True), 0.0),
    ],
)
def test_retry_after_is_read_in_seconds_or_as_a_date_uncapped(
    header: str | None, expected: float | None
) -> None:
    """Seconds or an HTTP date; never negative; unreadable values fall back to backoff.
    No cap here: the retry policy compares the wait with the remaining budget."""
    assert retry_after_seconds(header, now=1_000_000.0) == expected


# The local endpoint itself


def post(url: str, body: bytes = VALID) -> tuple[int, bytes]:
    response = requests.post(url, data=body, timeout=5)
    return response.status_code, response.content


def test_collect_answers_204_even_for_invalid_payloads_but_records_why(ga4: LocalGa4) -> None:
    """Like GA4: 2xx on /mp/collect whatever the payload; the record holds the messages."""
    bad = encode_body({"events": [{"name": "page_view"}]})
    status, _ = post(f"{ga4.url}/mp/collect?measurement_id=G-1&api_secret=x", bad)
    assert status == 204
    (record,) = ga4.requests()
    assert [m["validationCode"] for m in record["validation_messages"]] == ["VALUE_REQUIRED"]


def test_debug_reports_missing_query_parameters_and_non_json(ga4: LocalGa4) -> None:
    """measurement_id and api_secret are required; a body that is not JSON is VALUE_INVALID."""
    status, answer = post(f"{ga4.url}/debug/mp/collect", b"{nope")
    assert status == 200
    messages = json.loads(answer)["validationMessages"]
    assert [(m["fieldPath"], m["validationCode"]) for m in messages] == [
        ("measurement_id", "VALUE_REQUIRED"),
        ("api_secret", "VALUE_REQUIRED"),
        ("", "VALUE_INVALID"),
    ]


def test_every_request_is_one_ndjson_line(ga4: LocalGa4, tmp_path: Path) -> None:
    """The record file has one JSON object per request, with the documented fields."""
    ga4.fail_next(1, status=503)
    post(f"{ga4.url}/mp/collect?measurement_id=G-1&api_secret=x")
    post(f"{ga4.url}/mp/collect?measurement_id=G-1&api_secret=x")
    lines = (tmp_path / "ga4.ndjson").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["status"] for r in records] == [503, 204]
    assert set(records[0]) == {
        "received_at_micros",
        "path",
        "measurement_id",
        "event_id",
        "body",
        "validation_messages",
        "status",
    }


def test_faults_can_be_planned_over_http_from_another_process(ga4: LocalGa4) -> None:
    """POST /__admin/faults queues failures; GET /__admin/requests lists the records."""
    fault = json.dumps({"times": 2, "status": 502, "retry_after": 1}).encode()
    assert post(f"{ga4.url}/__admin/faults", fault)[0] == 204
    url = f"{ga4.url}/mp/collect?measurement_id=G-1&api_secret=x"
    assert [post(url)[0] for _ in range(3)] == [502, 502, 204]
    assert len(requests.get(f"{ga4.url}/__admin/requests", timeout=5).json()) == 3
    assert post(f"{ga4.url}/__admin/faults", b"[]")[0] == 400


def test_unknown_paths_answer_404(ga4: LocalGa4) -> None:
    """Only the two GA4 paths and the admin paths exist."""
    assert post(f"{ga4.url}/collect")[0] == 404
    assert ga4.requests() == []


def test_an_outage_fails_every_request_until_it_ends(ga4: LocalGa4, sleeps: list[float]) -> None:
    """The local endpoint's timed outage answers 503 to all, then recovers by itself."""
    ga4.fail_for(0.3, status=503)
    with pytest.raises(Ga4UnavailableError):
        client_for(ga4.url, sleeps, attempts=3).send("G-TEST", VALID)
    assert [r["status"] for r in ga4.requests()] == [503, 503, 503]
    time.sleep(0.35)
    client_for(ga4.url, []).send("G-TEST", VALID)
    assert len(ga4.accepted()) == 1


def test_a_retry_is_logged_with_the_event_it_retries(
    ga4: LocalGa4, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """One structured WARNING per retry, naming the event, the attempt and the wait."""
    caplog.set_level(logging.WARNING)
    ga4.fail_next(1, status=503)
    client_for(ga4.url, sleeps).send("G-TEST", VALID, event_id="e-42")
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "retrying"]
    assert record.event_id == "e-42"  # type: ignore[attr-defined]
    assert record.attempt == 1  # type: ignore[attr-defined]
    assert record.wait_seconds == round(sleeps[0], 3)  # type: ignore[attr-defined]
    assert "503" in record.error  # type: ignore[attr-defined]


@pytest.mark.parametrize(("pool_size", "reconnects"), [(24, False), (8, True)])
def test_concurrent_sends_keep_as_many_connections_as_the_pool_holds(
    ga4: LocalGa4, sleeps: list[float], pool_size: int, reconnects: bool
) -> None:
    """Two rounds of 24 sends at once: a pool the size of the instance's concurrency
    serves the second round on the first round's connections; a smaller one drops what
    it cannot keep and opens new connections (each a TLS handshake against GA4)."""
    client = client_for(ga4.url, sleeps, pool_size=pool_size)
    concurrency = 24

    def send_all() -> None:
        ga4.delay_next(concurrency, 0.2)
        start = threading.Barrier(concurrency)

        def send(n: int) -> None:
            start.wait()
            client.send("G-TEST", VALID, event_id=f"e-{n}")

        workers = [threading.Thread(target=send, args=(n,)) for n in range(concurrency)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    send_all()
    pool = client._transport
    assert isinstance(pool, OriginPool)
    opened = pool.opened
    assert opened == concurrency
    send_all()
    assert (pool.opened > opened) is reconnects
    assert len(ga4.accepted()) == 2 * concurrency


@pytest.mark.parametrize(("threads", "kept"), [({"THREADS": "80"}, 80), ({}, 16)])
def test_the_deployed_client_keeps_a_connection_per_concurrent_request(
    threads: dict[str, str], kept: int
) -> None:
    """``THREADS`` (functions-framework's concurrent requests, Terraform's concurrency)
    sizes the client's pool; 16 without it."""
    from shared import bootstrap
    from shared.domain.datamanager import DestinationPlan
    from shared.settings import Settings

    environ = {"GOOGLE_CLOUD_PROJECT": "demo-p", "GA4_MEASUREMENT_ID": "G-T", "GA4_API_SECRET": "s"}
    sender = bootstrap.ga4_sender(Settings.from_env(environ | threads), DestinationPlan())
    assert isinstance(sender, Ga4Client)
    assert isinstance(sender._transport, OriginPool)
    assert sender._transport.size == kept
