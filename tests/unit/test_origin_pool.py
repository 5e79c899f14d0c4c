"""The forwarder's kept-alive HTTP/1.1 pool against real local sockets.

Every server here is a real socket on 127.0.0.1 that writes its answers byte by byte, so
each answer shape and each fault is produced for real: a refused port, a reset, a hang-up,
an answer cut short, a server that never answers, an untrusted certificate, a server that
closes an idle kept connection. Only a connect timeout, which cannot be produced reliably
on loopback, comes from an injected ``connect``; other injected ``connect`` callables open
real connections and only record them (or send a default-port origin to a test server).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.origin_pool import Answer, AnswerLost, NotSent, OriginPool

BODY = b'{"client_id":"1.2","events":[{"name":"page_view","params":{}}]}'
HEADERS = {"Content-Type": "application/json", "X-Ga4-Stitch-Event-Id": "e-1"}
TARGET = "/mp/collect?measurement_id=G-TEST&api_secret=s"


def answer(status_line: str, *headers: str, body: bytes = b"") -> bytes:
    """An answer exactly as written: the status line, the header lines, a blank line, body."""
    head = "".join(f"{line}\r\n" for line in (status_line, *headers))
    return f"{head}\r\n".encode("latin-1") + body


NO_CONTENT = answer("HTTP/1.1 204 No Content", "Server: raw")


@dataclass(frozen=True)
class Request:
    """One request as the server read it: the request line, the header lines in order,
    the body, and the client's address (one per connection)."""

    line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    peer: tuple[str, int]

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass(frozen=True)
class Exchange:
    """What a responder gets: the request read, the connection, and the server's stop
    signal (for responders that hold an answer back)."""

    request: Request
    conn: socket.socket
    stopping: threading.Event

    def send(self, data: bytes) -> None:
        self.conn.sendall(data)


Respond = Callable[[Exchange], bool]
"""Writes the answer (or not); True keeps reading requests on the connection, False closes it."""


def read_request(reader: Any, peer: tuple[str, int]) -> Request | None:
    line: bytes = reader.readline(65_537)
    if not line:
        return None
    headers: list[tuple[str, str]] = []
    while (header := reader.readline(65_537)) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    body: bytes = reader.read(length)
    return Request(line.decode("latin-1").rstrip("\r\n"), tuple(headers), body, peer)


class RawServer:
    """A threaded server on 127.0.0.1 (TLS given a context): each request it reads whole
    is recorded in ``requests`` and answered by ``respond``. A refused TLS handshake
    records nothing but counts in ``refused_handshakes``."""

    def __init__(self, respond: Respond, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        self.refused_handshakes = 0
        self.stopping = threading.Event()
        self._respond = respond
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.02)
        self._changed = threading.Condition()
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = 0
        self.port: int = self._listener.getsockname()[1]
        self.url = f"{'https' if tls is not None else 'http'}://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def peers(self) -> list[tuple[str, int]]:
        """The distinct client addresses, in the order their first request arrived."""
        return list(dict.fromkeys(request.peer for request in self.requests))

    def wait_closed(self, count: int) -> None:
        """Until the server has closed ``count`` connections (by itself or at EOF)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._closed >= count, timeout=5)

    def wait_refused(self, count: int) -> None:
        """Until ``count`` TLS handshakes have failed at the server."""
        with self._changed:
            assert self._changed.wait_for(lambda: self.refused_handshakes >= count, timeout=5)

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self._acceptor.join(timeout=2)
        self._listener.close()
        with self._changed:
            connections, threads = list(self._connections), list(self._threads)
        for connection in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=2)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._changed:
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        if self._tls is not None:
            try:
                conn = self._tls.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()
                with self._changed:
                    self.refused_handshakes += 1
                    self._changed.notify_all()
                return
        with self._changed:
            self._connections.append(conn)
        reader = conn.makefile("rb")
        try:
            peer = conn.getpeername()
            while (request := read_request(reader, peer)) is not None:
                with self._changed:
                    self.requests.append(request)
                if not self._respond(Exchange(request, conn, self.stopping)):
                    break
        except (OSError, threading.BrokenBarrierError):
            pass
        finally:
            reader.close()
            conn.close()
            with self._changed:
                self._closed += 1
                self._changed.notify_all()


def replying(data: bytes, *, keep: bool = True) -> Respond:
    """Writes ``data`` to every request; closes the connection after unless ``keep``."""

    def respond(exchange: Exchange) -> bool:
        exchange.send(data)
        return keep

    return respond


def by_target(routes: dict[str, Respond]) -> Respond:
    def respond(exchange: Exchange) -> bool:
        target = exchange.request.line.split(" ")[1]
        return routes[target](exchange)

    return respond


def hang_up(*, reset: bool) -> Respond:
    """Reads the request, then resets the connection (SO_LINGER 0) or closes it."""

    def respond(exchange: Exchange) -> bool:
        if reset:
            exchange.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False

    return respond


def never_answer(exchange: Exchange) -> bool:
    """Holds the connection open, answering nothing, until the server stops."""
    exchange.stopping.wait(5)
    return False


class Dialer:
    """A ``connect`` that opens real connections and records them: the address asked for
    and the socket, so a test can see whether the pool closed it. Given ``port``, it
    connects to 127.0.0.1 on that port whatever the address (an origin on port 80 or 443
    served by a test server)."""

    def __init__(self, port: int | None = None) -> None:
        self.addresses: list[tuple[str, int]] = []
        self.sockets: list[socket.socket] = []
        self._port = port

    def __call__(self, address: tuple[str, int], timeout: float) -> socket.socket:
        self.addresses.append(address)
        target = address if self._port is None else ("127.0.0.1", self._port)
        sock = socket.create_connection(target, timeout)
        self.sockets.append(sock)
        return sock

    def closed(self) -> list[bool]:
        return [sock.fileno() == -1 for sock in self.sockets]


def pool_for(origin: str, **options: Any) -> OriginPool:
    settings: dict[str, Any] = {"size": 4, "connect_timeout": 2.0, "read_timeout": 2.0}
    settings.update(options)
    return OriginPool(origin, **settings)


def post(pool: OriginPool, target: str = TARGET) -> Answer:
    return pool.post(target, BODY, HEADERS)


@pytest.fixture
def server_tls(certificates: dict[str, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates["cert"], certificates["key"])
    return context


@pytest.fixture
def trusting(certificates: dict[str, Path]) -> ssl.SSLContext:
    """A client context that trusts only the test CA and checks the host name."""
    context = ssl.create_default_context(cafile=str(certificates["ca"]))
    assert context.check_hostname
    return context


# Answers read whole, and the request as written


def test_a_204_answer_has_its_status_lower_cased_headers_and_no_body() -> None:
    """Header names come back lower-case (values untouched), reachable in any case."""
    data = answer("HTTP/1.1 204 No Content", "X-Request-ID: Abc-1", "Server: raw")
    with RawServer(replying(data)) as server:
        result = post(pool_for(server.url))
    assert result.status == 204
    assert dict(result.headers) == {"x-request-id": "Abc-1", "server": "raw"}
    assert result.header("X-REQUEST-ID") == "Abc-1"
    assert result.body == b""


def test_a_200_answer_body_is_read_by_its_content_length() -> None:
    payload = b'{"validationMessages": []}'
    data = answer(
        "HTTP/1.1 200 OK",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        body=payload,
    )
    with RawServer(replying(data)) as server:
        result = post(pool_for(server.url))
    assert result.status == 200
    assert result.headers["content-type"] == "application/json"
    assert result.headers["content-length"] == str(len(payload))
    assert result.body == payload


def test_the_request_carries_method_target_host_headers_length_and_the_exact_body() -> None:
    body = b"\x00binary\r\n\r\nnot the end\xff"
    with RawServer(replying(NO_CONTENT)) as server:
        pool_for(server.url).post(TARGET, body, HEADERS)
    (request,) = server.requests
    assert request.line == f"POST {TARGET} HTTP/1.1"
    assert request.values("Host") == [f"127.0.0.1:{server.port}"]
    assert request.values("Content-Type") == ["application/json"]
    assert request.values("X-Ga4-Stitch-Event-Id") == ["e-1"]
    assert request.values("Content-Length") == [str(len(body))]
    assert len(request.headers) == 4
    assert request.body == body


def test_repeated_answer_headers_keep_the_last_value() -> None:
    data = answer("HTTP/1.1 204 No Content", "X-Hop: one", "x-hop: two")
    with RawServer(replying(data)) as server:
        result = post(pool_for(server.url))
    assert result.header("x-hop") == "two"


# Keep-alive: what is reused and what is not


def test_sequential_posts_share_one_kept_connection() -> None:
    payload = b"ok"
    routes = {
        "/a": replying(NO_CONTENT),
        "/b": replying(answer("HTTP/1.1 200 OK", "Content-Length: 2", body=payload)),
    }
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url)
        results = [post(pool, target) for target in ("/a", "/b", "/a", "/b", "/a")]
    assert [r.status for r in results] == [204, 200, 204, 200, 204]
    assert [r.body for r in results] == [b"", payload, b"", payload, b""]
    assert pool.opened == 1
    assert len(server.requests) == 5
    assert len(server.peers) == 1


def test_a_chunked_answer_with_extensions_and_trailers_is_read_whole_and_kept() -> None:
    chunked = answer(
        "HTTP/1.1 200 OK",
        "Transfer-Encoding: chunked",
        "Trailer: X-Checksum",
        body=b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Checksum: abc\r\n\r\n",
    )
    routes = {"/chunked": replying(chunked), "/next": replying(NO_CONTENT)}
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url)
        first = post(pool, "/chunked")
        second = post(pool, "/next")
    assert (first.status, first.body) == (200, b"hello, world")
    assert second.status == 204
    assert pool.opened == 1
    assert len(server.peers) == 1


def test_a_body_that_ends_at_close_is_read_and_its_connection_not_kept() -> None:
    until_close = answer("HTTP/1.1 200 OK", "Content-Type: text/plain", body=b"all of it")
    routes = {"/close": replying(until_close, keep=False), "/next": replying(NO_CONTENT)}
    dialer = Dialer()
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url, connect=dialer)
        first = post(pool, "/close")
        assert dialer.closed() == [True]
        second = post(pool, "/next")
    assert (first.status, first.body) == (200, b"all of it")
    assert second.status == 204
    assert pool.opened == 2


@pytest.mark.parametrize(
    "data",
    [
        answer("HTTP/1.1 204 No Content", "Connection: close"),
        answer("HTTP/1.1 204 No Content", "connection: Keep-Alive, CLOSE"),
        answer("HTTP/1.0 200 OK", "Content-Length: 2", body=b"ok"),
    ],
    ids=["connection-close", "close-among-tokens", "http-1.0"],
)
def test_an_answer_asking_to_close_or_from_http_1_0_ends_its_connection(data: bytes) -> None:
    """The server keeps the connection open: only the client's reading of the answer
    decides that it is not reused."""
    routes = {"/first": replying(data), "/next": replying(NO_CONTENT)}
    dialer = Dialer()
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url, connect=dialer)
        first = post(pool, "/first")
        assert dialer.closed() == [True]
        second = post(pool, "/next")
    assert first.status in (200, 204)
    assert second.status == 204
    assert pool.opened == 2
    assert len(server.peers) == 2


def closed_after_answering(how: str) -> Respond:
    """Answers as if keeping the connection, then ends it: a FIN, an RST, or an
    unasked 408 and a FIN (what servers send at their idle timeout)."""

    def respond(exchange: Exchange) -> bool:
        exchange.send(answer("HTTP/1.1 204 No Content", "Connection: keep-alive"))
        if how == "reset":
            exchange.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if how == "408":
            exchange.send(answer("HTTP/1.1 408 Request Timeout", "Connection: close"))
        return False

    return respond


@pytest.mark.parametrize("how", ["close", "reset", "408"])
def test_an_idle_connection_the_server_closed_is_replaced_without_an_error(how: str) -> None:
    """The stale-connection check: the next post opens a new connection and succeeds,
    instead of writing into a dead one and losing the answer."""
    routes = {"/first": closed_after_answering(how), "/next": replying(NO_CONTENT)}
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url)
        assert post(pool, "/first").status == 204
        server.wait_closed(1)
        second = post(pool, "/next")
    assert second.status == 204
    assert pool.opened == 2
    assert [r.line.split(" ")[1] for r in server.requests] == ["/first", "/next"]
    assert len(server.peers) == 2


def test_an_idle_connection_with_bytes_nobody_asked_for_is_replaced() -> None:
    """The server writes an unasked answer on the idle connection and keeps it open:
    that connection is dropped, and the next post is answered on a new one."""
    answered, pushed = threading.Event(), threading.Event()

    def then_push(exchange: Exchange) -> bool:
        exchange.send(NO_CONTENT)
        answered.wait(5)
        exchange.send(answer("HTTP/1.1 400 Bad Request", "Content-Length: 0"))
        pushed.set()
        return True

    routes = {"/first": then_push, "/next": replying(NO_CONTENT)}
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url)
        assert post(pool, "/first").status == 204
        answered.set()
        assert pushed.wait(5)
        second = post(pool, "/next")
    assert second.status == 204
    assert pool.opened == 2
    assert len(server.peers) == 2


@pytest.mark.parametrize(
    "extra",
    [answer("HTTP/1.1 408 Request Timeout", "Content-Length: 0"), b"EXTRA"],
    ids=["a-whole-answer", "stray-bytes"],
)
def test_bytes_that_arrive_with_an_answer_are_never_taken_for_the_next_ones(
    extra: bytes,
) -> None:
    """The server writes more than one answer in one go and keeps the connection: the
    extra bytes end that connection, so the next post gets its own answer."""
    routes = {"/first": replying(NO_CONTENT + extra), "/next": replying(NO_CONTENT)}
    dialer = Dialer()
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url, connect=dialer)
        assert post(pool, "/first").status == 204
        second = post(pool, "/next")
    assert second.status == 204
    assert pool.opened == 2
    assert dialer.closed()[0] is True


@pytest.mark.parametrize(
    "interim",
    [
        answer("HTTP/1.1 100 Continue"),
        answer("HTTP/1.1 103 Early Hints", "Link: </style.css>; rel=preload")
        + answer("HTTP/1.1 100 Continue"),
    ],
    ids=["100", "103-and-100"],
)
def test_interim_answers_are_skipped_and_the_connection_stays_in_step(interim: bytes) -> None:
    """Each post gets its own final answer, over one kept connection."""

    def final(body: bytes) -> Respond:
        return replying(interim + answer("HTTP/1.1 200 OK", "Content-Length: 3", body=body))

    routes = {"/one": final(b"one"), "/two": final(b"two")}
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url)
        first, second = post(pool, "/one"), post(pool, "/two")
    assert (first.status, first.body) == (200, b"one")
    assert (second.status, second.body) == (200, b"two")
    assert pool.opened == 1


def test_a_close_in_any_connection_header_ends_the_connection() -> None:
    data = answer("HTTP/1.1 204 No Content", "Connection: close", "Connection: keep-alive")
    routes = {"/first": replying(data), "/next": replying(NO_CONTENT)}
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url)
        post(pool, "/first")
        post(pool, "/next")
    assert pool.opened == 2


# Never sent: nothing of the request was written
# Never sent: nothing of the request was written


def test_a_refused_connection_is_not_sent() -> None:
    """A port bound but not listening refuses at once, and stays ours during the test."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        pool = pool_for(f"http://127.0.0.1:{bound.getsockname()[1]}")
        with pytest.raises(NotSent, match=r"127\.0\.0\.1") as caught:
            post(pool)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert pool.opened == 0


def test_an_unresolvable_host_name_is_not_sent() -> None:
    pool = pool_for("http://nonexistent.invalid")
    with pytest.raises(NotSent, match=r"nonexistent\.invalid") as caught:
        post(pool)
    assert isinstance(caught.value.__cause__, socket.gaierror)
    assert pool.opened == 0


def test_a_host_name_that_cannot_be_encoded_is_not_sent() -> None:
    """A label over 63 characters fails in the resolver's encoding, before any socket."""
    with pytest.raises(NotSent):
        post(pool_for(f"http://{'a' * 64}.example"))


def test_a_connect_timeout_is_not_sent() -> None:
    """Injected: a connect that times out the way ``create_connection`` does."""
    asked: list[tuple[tuple[str, int], float]] = []

    def timing_out(address: tuple[str, int], timeout: float) -> socket.socket:
        asked.append((address, timeout))
        raise TimeoutError("timed out")

    pool = pool_for("http://127.0.0.1:9", connect=timing_out, connect_timeout=0.25)
    with pytest.raises(NotSent):
        post(pool)
    assert asked == [(("127.0.0.1", 9), 0.25)]
    assert pool.opened == 0


def test_a_tls_handshake_the_server_never_answers_is_not_sent(trusting: ssl.SSLContext) -> None:
    """The kernel accepts the connection, nobody speaks TLS: bounded by the connect timeout."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        pool = pool_for(f"https://127.0.0.1:{port}", tls=trusting, connect_timeout=0.2)
        with pytest.raises(NotSent):
            post(pool)
    assert pool.opened == 0


@pytest.mark.parametrize("case", ["unknown-ca", "wrong-name"])
def test_a_certificate_not_trusted_is_not_sent_and_the_server_reads_nothing(
    server_tls: ssl.SSLContext, trusting: ssl.SSLContext, case: str
) -> None:
    """A CA the client does not trust, or a trusted certificate for another name."""
    with RawServer(replying(NO_CONTENT), tls=server_tls) as server:
        if case == "unknown-ca":
            pool = pool_for(server.url, tls=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        else:
            pool = pool_for(f"https://localhost:{server.port}", tls=trusting)
        with pytest.raises(NotSent) as caught:
            post(pool)
        server.wait_refused(1)
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert server.requests == []
    assert pool.opened == 0


# Answer lost: the request may have reached the server


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "close"])
def test_a_connection_lost_after_the_request_was_read_loses_the_answer(reset: bool) -> None:
    dialer = Dialer()
    routes = {"/lost": hang_up(reset=reset), "/next": replying(NO_CONTENT)}
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url, connect=dialer)
        with pytest.raises(AnswerLost):
            post(pool, "/lost")
        assert dialer.closed() == [True]
        assert post(pool, "/next").status == 204
    (lost, _) = server.requests
    assert lost.body == BODY
    assert pool.opened == 2


@pytest.mark.parametrize(
    "data",
    [
        answer("HTTP/1.1 200 OK", "Content-Length: 10", body=b"1234"),
        b"HTTP/1.1 200 OK\r\nContent-Le",
        answer("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"5\r\nhel"),
        answer("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"0\r\nX-Trailer: a\r\n"),
    ],
    ids=["body", "headers", "chunk", "trailers"],
)
def test_an_answer_cut_short_by_a_close_loses_the_answer(data: bytes) -> None:
    dialer = Dialer()
    with RawServer(replying(data, keep=False)) as server:
        pool = pool_for(server.url, connect=dialer)
        with pytest.raises(AnswerLost):
            post(pool)
    assert len(server.requests) == 1
    assert dialer.closed() == [True]


@pytest.mark.parametrize(
    "data",
    [
        b"garbage\r\n\r\n",
        answer("HTTP/2 200"),
        answer("HTTP/1.1 OK 200"),
        answer("HTTP/1.1 200 OK", "Content-Length: ten", body=b"0123456789"),
        answer("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"zz\r\n"),
        answer("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"2\r\nokay\r\n0\r\n\r\n"),
    ],
    ids=["status-line", "http-2", "no-code", "content-length", "chunk-size", "chunk-end"],
)
def test_an_unparseable_answer_is_lost_and_its_connection_never_reused(data: bytes) -> None:
    """The server keeps the connection open; the client must not write on it again."""
    routes = {"/bad": replying(data), "/next": replying(NO_CONTENT)}
    dialer = Dialer()
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url, connect=dialer)
        with pytest.raises(AnswerLost):
            post(pool, "/bad")
        assert dialer.closed() == [True]
        assert post(pool, "/next").status == 204
    assert pool.opened == 2
    assert len(server.peers) == 2


def test_a_server_that_never_answers_is_a_lost_answer_after_the_read_timeout() -> None:
    routes = {"/slow": never_answer, "/next": replying(NO_CONTENT)}
    dialer = Dialer()
    with RawServer(by_target(routes)) as server:
        pool = pool_for(server.url, connect=dialer, read_timeout=0.2)
        with pytest.raises(AnswerLost) as caught:
            post(pool, "/slow")
        assert isinstance(caught.value.__cause__, TimeoutError)
        assert dialer.closed() == [True]
        assert post(pool, "/next").status == 204
    assert pool.opened == 2
    assert server.requests[0].body == BODY
    assert len(server.peers) == 2


# TLS


def test_https_with_a_trusted_ca_is_sent_and_its_connection_kept(
    server_tls: ssl.SSLContext, trusting: ssl.SSLContext
) -> None:
    payload = b'{"ok": true}'
    data = answer("HTTP/1.1 200 OK", f"Content-Length: {len(payload)}", body=payload)
    with RawServer(replying(data), tls=server_tls) as server:
        pool = pool_for(server.url, tls=trusting)
        results = [post(pool) for _ in range(3)]
    assert [(r.status, r.body) for r in results] == [(200, payload)] * 3
    assert pool.opened == 1
    assert len(server.peers) == 1
    assert server.requests[0].values("Host") == [f"127.0.0.1:{server.port}"]
    assert server.requests[0].body == BODY
    assert server.refused_handshakes == 0


# Pool size and clear


def test_concurrent_posts_beyond_the_pool_size_keep_only_size_connections() -> None:
    """Four posts at once (the server answers none until all four arrived) need four
    connections; only two are kept, so the next four at once reuse two and open two."""
    arrived = threading.Barrier(4)

    def all_at_once(exchange: Exchange) -> bool:
        arrived.wait(timeout=5)
        exchange.send(NO_CONTENT)
        return True

    dialer = Dialer()
    with RawServer(all_at_once) as server, ThreadPoolExecutor(max_workers=4) as workers:
        pool = pool_for(server.url, size=2, connect=dialer)
        first = list(workers.map(lambda _: post(pool), range(4)))
        assert pool.opened == 4
        assert sorted(dialer.closed()) == [False, False, True, True]
        kept = {sock.getsockname() for sock in dialer.sockets if sock.fileno() != -1}
        second = list(workers.map(lambda _: post(pool), range(4)))
    assert [r.status for r in first + second] == [204] * 8
    assert pool.opened == 6
    assert len(server.peers) == 6
    second_peers = {request.peer for request in server.requests[4:]}
    assert len(second_peers) == 4
    assert kept < second_peers


def test_clear_closes_idle_connections_and_the_next_post_opens_a_new_one() -> None:
    dialer = Dialer()
    with RawServer(replying(NO_CONTENT)) as server:
        pool = pool_for(server.url, connect=dialer)
        post(pool)
        post(pool)
        assert dialer.closed() == [False]
        pool.clear()
        assert dialer.closed() == [True]
        server.wait_closed(1)
        post(pool)
    assert pool.opened == 2
    assert len(server.peers) == 2


# The origin


@pytest.mark.parametrize(
    "origin", ["ftp://127.0.0.1", "127.0.0.1:8080", "http://", "https:///mp/collect"]
)
def test_only_http_origins_with_a_host_are_accepted(origin: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        pool_for(origin)


def test_an_https_origin_needs_a_tls_context() -> None:
    with pytest.raises(ValueError, match="TLS context"):
        pool_for("https://127.0.0.1:8443")


@pytest.mark.parametrize(
    ("origin", "address"),
    [
        ("http://127.0.0.1", ("127.0.0.1", 80)),
        ("http://127.0.0.1:80", ("127.0.0.1", 80)),
        ("https://127.0.0.1", ("127.0.0.1", 443)),
        ("https://127.0.0.1:443", ("127.0.0.1", 443)),
    ],
)
def test_an_origin_on_its_default_port_connects_there_and_names_the_host_alone(
    server_tls: ssl.SSLContext, trusting: ssl.SSLContext, origin: str, address: tuple[str, int]
) -> None:
    """The connect is sent to the test server; the address asked for and the Host sent
    are the pool's."""
    tls = server_tls if origin.startswith("https") else None
    with RawServer(replying(NO_CONTENT), tls=tls) as server:
        dialer = Dialer(port=server.port)
        pool = pool_for(origin, connect=dialer, tls=trusting)
        assert post(pool).status == 204
    assert dialer.addresses == [address]
    assert server.requests[0].values("Host") == ["127.0.0.1"]


def test_an_ipv6_origin_is_bracketed_in_the_host_header() -> None:
    with RawServer(replying(NO_CONTENT)) as server:
        dialer = Dialer(port=server.port)
        assert post(pool_for("http://[::1]:8080", connect=dialer)).status == 204
    assert dialer.addresses == [("::1", 8080)]
    assert server.requests[0].values("Host") == ["[::1]:8080"]
