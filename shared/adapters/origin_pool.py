"""Kept-alive HTTP/1.1 connections to one origin, for the forwarder's hot path to GA4.

Why not urllib3 for this: per send, urllib3's pool, its ``Timeout`` and ``HTTPResponse``
objects and the standard library's response parser (``http.client`` reads headers with
the ``email`` package) cost more CPU than everything else the GA4 client does. Measured in
one process against the local GA4 endpoint in another (1,000 sends after a warm-up, five
rounds, client CPU per send): urllib3 314 us, ``http.client`` alone 187 us, one request
written and its answer read on a kept socket 58 us. Under callgrind the urllib3 send was
0.71 M of the forward function's 4.0 M instructions per event. GA4's answers are small
and plain (a status, a few headers, an empty or JSON body), so this module writes the
request itself and reads only what it needs of the answer.

Invariants:
- The outcome of a request is known by its phase. Anything that fails before the first
  byte of the request is written (name resolution, connect, connect timeout, the TLS
  handshake, a certificate refused) raises ``NotSent``: the server certainly never saw the
  request. Anything that fails after (the write itself, a read timeout, a reset, a close
  before the whole answer, an answer that cannot be parsed) raises ``AnswerLost``: the
  server may have acted on it. Callers retry the first freely and the second only where
  the endpoint ingests nothing.
- A connection is reused only after its whole answer was read, from an HTTP/1.1 server
  that did not ask to close it (in any ``Connection`` header), with no byte after it. An
  idle connection the server has closed (readable before a request: end of file, or
  bytes nobody asked for) is dropped before it is used, as urllib3 does, so an idle
  timeout at the server never costs an unknown outcome, and an answer is never taken
  for the next request's.
- Interim answers (1xx) are skipped; the caller sees the final one.
- At most ``size`` idle connections are kept (most recently used first); a request never
  waits for one, it opens a new connection, and one returned beyond ``size`` is closed.
- Timeouts: ``connect`` bounds the connection and the TLS handshake, ``read`` every later
  socket operation (each write and each read).
- Nothing is retried here and no redirect is followed: the caller decides.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Answer", "AnswerLost", "NotSent", "OriginPool"]

MAX_LINE = 65_536
"""Longest status or header line read; GA4's are far shorter."""
MAX_HEADERS = 100
MAX_BODY = 16 * 1024 * 1024
"""Largest answer body read; ``/debug/mp/collect`` answers a few kilobytes of JSON."""

Connector = Callable[[tuple[str, int], float], socket.socket]


class NotSent(OSError):
    """The request certainly never reached the server (no byte of it was written)."""


class AnswerLost(OSError):
    """The request may have reached the server, but no whole answer came back."""


@dataclass(frozen=True)
class Answer:
    """A whole HTTP answer: ``headers`` by lower-case name (the last of repeated ones)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _Connection:
    """One socket and the bytes read from it but not yet taken; ``usable`` is False once
    it must not carry another request."""

    __slots__ = ("buffer", "sock", "usable")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.usable = True

    def dropped(self) -> bool:
        """True when the server closed the idle connection or sent bytes nobody asked for
        (read already, held by TLS, or waiting on the socket)."""
        if self.buffer or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            return True
        poller = select.poll()
        try:
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def _fill(self) -> bool:
        """Reads what the socket has (waiting up to the read timeout); False at its end."""
        chunk = self.sock.recv(65_536)
        self.buffer += chunk
        return bool(chunk)

    def line(self) -> bytes:
        """The next line with its end (``\\n``), or what is left when the connection ends."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                return self.take(end + 1)
            if len(self.buffer) > MAX_LINE:
                raise AnswerLost("an answer line is too long")
            if not self._fill():
                return self.take(len(self.buffer))

    def exactly(self, length: int) -> bytes:
        while len(self.buffer) < length:
            if not self._fill():
                raise AnswerLost(f"the answer was cut short: {len(self.buffer)} of {length} bytes")
        return self.take(length)

    def to_end(self) -> bytes:
        while self._fill():
            if len(self.buffer) > MAX_BODY:
                raise AnswerLost("the answer's body is too large")
        return self.take(len(self.buffer))

    def take(self, length: int) -> bytes:
        taken = bytes(self.buffer[:length])
        del self.buffer[:length]
        return taken

    def close(self) -> None:
        self.usable = False
        with contextlib.suppress(OSError):
            self.sock.close()


class OriginPool:
    """HTTP/1.1 to one ``origin`` (``http://host[:port]`` or ``https://host[:port]``).

    ``tls`` verifies an ``https`` origin (required for one); ``connect`` opens the TCP
    connection (``socket.create_connection`` unless a test injects a fault). ``opened``
    counts the connections made, for tests and benchmarks of connection reuse.
    """

    def __init__(
        self,
        origin: str,
        *,
        size: int,
        connect_timeout: float,
        read_timeout: float,
        tls: ssl.SSLContext | None = None,
        connect: Connector | None = None,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        if parts.scheme == "https" and tls is None:
            raise ValueError("an https origin needs a TLS context")
        default_port = 443 if parts.scheme == "https" else 80
        self.size = size
        self._address = (parts.hostname, parts.port or default_port)
        self._tls = tls if parts.scheme == "https" else None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self._host_header = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._connect = connect or socket.create_connection
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self.opened = 0

    def post(self, target: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """``POST target`` with ``body`` and ``headers`` (names and values already safe for
        a header line); the whole answer, or ``NotSent`` / ``AnswerLost``."""
        lines = [f"POST {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        request = "\r\n".join(lines).encode("latin-1") + body
        connection = self._checkout()
        try:
            connection.sock.sendall(request)
            answer = self._read_answer(connection)
        except (OSError, ValueError) as error:
            connection.close()
            if isinstance(error, AnswerLost):
                raise
            raise AnswerLost(f"{type(error).__name__}: {error}") from error
        self._checkin(connection)
        return answer

    def clear(self) -> None:
        """Closes every idle connection; requests in flight keep theirs until they end."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _checkout(self) -> _Connection:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._open()
            if not connection.dropped():
                return connection
            connection.close()

    def _checkin(self, connection: _Connection) -> None:
        if connection.usable:
            with self._lock:
                if len(self._idle) < self.size:
                    self._idle.append(connection)
                    return
        connection.close()

    def _open(self) -> _Connection:
        try:
            sock = self._connect(self._address, self._connect_timeout)
        except (OSError, UnicodeError) as error:
            raise NotSent(f"no connection to {self._address[0]}: {error}") from error
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock.settimeout(self._connect_timeout)
                sock = self._tls.wrap_socket(sock, server_hostname=self._address[0])
            sock.settimeout(self._read_timeout)
        except OSError as error:
            sock.close()
            raise NotSent(f"no connection to {self._address[0]}: {error}") from error
        with self._lock:
            self.opened += 1
        return _Connection(sock)

    def _read_answer(self, connection: _Connection) -> Answer:
        """The final answer; interim (1xx) answers before it are read and skipped, as
        HTTP/1.1 asks of a client. Bytes left after it make the connection unusable."""
        while True:
            version, status, headers, close = _head(connection)
            if not 100 <= status < 200:
                break
            if status == 101:
                raise AnswerLost("the server switched protocols")
        body = _body(connection, status, headers)
        if close or version != b"HTTP/1.1" or connection.buffer:
            connection.usable = False
        return Answer(status, headers, body)


def _head(connection: _Connection) -> tuple[bytes, int, dict[str, str], bool]:
    """Status line and headers: version, status, headers by lower-case name (the last
    of repeated ones), and whether any ``Connection`` header asked to close."""
    status_line = connection.line()
    if not status_line:
        raise AnswerLost("the server closed the connection without answering")
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise AnswerLost(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    close = False
    for _ in range(MAX_HEADERS + 1):
        line = connection.line()
        if line in (b"\r\n", b"\n"):
            return version, int(code), headers, close
        if not line.endswith(b"\n"):
            raise AnswerLost("the connection closed in the answer's headers")
        name, colon, value = line.partition(b":")
        if colon:
            key = name.strip().lower().decode("latin-1")
            headers[key] = value.strip().decode("latin-1")
            close = close or (key == "connection" and "close" in headers[key].lower())
    raise AnswerLost("too many header lines in the answer")


def _body(connection: _Connection, status: int, headers: Mapping[str, str]) -> bytes:
    if status in (204, 304):
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _chunked(connection)
    length = headers.get("content-length")
    if length is None:
        connection.usable = False
        return connection.to_end()
    if not length.isdigit() or int(length) > MAX_BODY:
        raise AnswerLost(f"unusable Content-Length: {length[:40]!r}")
    return connection.exactly(int(length))


def _chunked(connection: _Connection) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = connection.line().split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise AnswerLost(f"unreadable chunk size: {size_line[:40]!r}") from None
        if size == 0:
            break
        total += size
        if total > MAX_BODY:
            raise AnswerLost("the answer's body is too large")
        parts.append(connection.exactly(size))
        if connection.line() not in (b"\r\n", b"\n"):
            raise AnswerLost("a chunk did not end where its size said")
    while (trailer := connection.line()) not in (b"\r\n", b"\n"):
        if not trailer.endswith(b"\n"):
            raise AnswerLost("the connection closed in the answer's trailers")
    return b"".join(parts)
