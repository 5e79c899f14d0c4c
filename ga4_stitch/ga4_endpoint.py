"""A local GA4 endpoint: a real HTTP server for tests and the local pipeline.

It serves both ways into GA4 and answers like each:

- Measurement Protocol: ``POST /mp/collect`` always answers 204 (GA4 accepts invalid
  payloads silently), ``POST /debug/mp/collect`` answers 200 with
  ``{"validationMessages": [...]}``. Both validate exactly like
  ``shared.domain.validation`` in strict mode (every message counts, nothing is repaired),
  plus the presence of the ``measurement_id`` and ``api_secret`` query parameters.
- Data Manager API: ``POST /v1/events:ingest`` (the REST path of the official client's
  ``IngestionServiceClient.ingest_events``) parses the body with the official types and
  refuses what the API documents it refuses (``ga4_stitch.datamanager_ingest``): HTTP 400
  with a ``google.rpc.Status`` JSON, ``INVALID_ARGUMENT`` with ErrorInfo and BadRequest
  field violations; otherwise 200 ``{"requestId": ...}``. ``validateOnly`` requests are
  checked and answered, never ingested.

Every request is recorded, in memory and as one NDJSON line
``{received_at_micros, path, measurement_id, event_id, body, validation_messages, status}``
(``event_id``: the forwarder's ``X-Ga4-Stitch-Event-Id`` header, or null); the API secret
is never recorded nor logged. A Data Manager request is recorded in the same shape, as
one record per forwarded event it carries (a batch carries many): ``event_id`` the
event's own, from the ``x-ga4-stitch-event-ids`` header (one percent-quoted id per GA4
event, comma separated; the single ``X-Ga4-Stitch-Event-Id`` is read too), ``body`` the
Measurement Protocol body GA4 would have recorded for that event
(``ga4_stitch.datamanager_hits.event_hits``), ``validation_messages`` the request's field
violations, plus ``request_id`` (shared by the records of one request), ``hit`` and
``hits`` (the record's position and count in its request), ``request`` (the request as
sent) and ``ads_conversions`` (its events bound for Google Ads), both on the first record
of a request only, and ``validate_only``; so replay, score and parity read either
destination alike, and the requests of a run are its distinct ``request_id``.

A fault plan makes the next requests fail (any status, with ``Retry-After``) or answer
late, to exercise retries: ``fail_next`` / ``delay_next`` / ``fail_for`` (an outage of some
seconds) in process, or ``POST /__admin/faults`` from another process
(``{"for_seconds": 60, "status": 503}`` for an outage). Faults apply to both APIs; a Data
Manager answer under a fault carries the ``google.rpc.Status`` of its HTTP status.
``GET /__admin/requests`` returns the records. ``LocalGa4.reported`` reads the accepted
ones as GA4's reports would show them
(device, geo and campaign precedence of ``ga4_stitch.parity``).
"""

from __future__ import annotations

import argparse
import collections
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import uuid4

from ga4_stitch import datamanager_hits, datamanager_ingest
from shared.adapters.ga4_http import EVENT_ID_HEADER, EVENT_IDS_HEADER
from shared.domain.validation import Code, Message, parse_body, validate

COLLECT_PATH = "/mp/collect"
DEBUG_PATH = "/debug/mp/collect"
FAULTS_PATH = "/__admin/faults"
REQUESTS_PATH = "/__admin/requests"
INGEST_PATH = datamanager_ingest.INGEST_PATH
ACCEPTING_PATHS = frozenset({COLLECT_PATH, INGEST_PATH})
"""Paths whose 2xx answer means GA4 took the events (the debug path ingests nothing)."""
RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""HTTP status -> ``google.rpc.Code`` name, as Google's REST APIs pair them."""


@dataclass(frozen=True)
class Fault:
    """What to do to one request: wait ``delay_seconds``, then answer ``status`` if set."""

    status: int | None = None
    delay_seconds: float = 0.0
    retry_after: float | None = None

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> tuple[Fault, int]:
        """``{"times": n, "status": 503, "retry_after": 1, "delay_seconds": 0.5}``
        (``for_seconds`` instead of ``times``: see ``_State.plan_for``)."""
        fault = cls(
            status=int(value["status"]) if value.get("status") is not None else None,
            delay_seconds=float(value.get("delay_seconds", 0.0)),
            retry_after=float(value["retry_after"])
            if value.get("retry_after") is not None
            else None,
        )
        return fault, int(value.get("times", 1))


class _State:
    """Fault plan and records, shared by the server's handler threads."""

    def __init__(self, record_path: Path | None) -> None:
        self.lock = threading.Lock()
        self.faults: collections.deque[Fault] = collections.deque()
        self.outage: tuple[Fault, float] | None = None
        self.records: list[dict[str, Any]] = []
        self.record_path = record_path
        if record_path is not None:
            record_path.parent.mkdir(parents=True, exist_ok=True)
            record_path.touch()

    def plan(self, fault: Fault, times: int) -> None:
        with self.lock:
            self.faults.extend([fault] * times)

    def plan_for(self, fault: Fault, seconds: float) -> None:
        """Every request for the next ``seconds`` meets ``fault`` (an outage, not a count)."""
        with self.lock:
            self.outage = (fault, time.monotonic() + seconds)

    def next_fault(self) -> Fault | None:
        with self.lock:
            if self.outage is not None and time.monotonic() < self.outage[1]:
                return self.outage[0]
            return self.faults.popleft() if self.faults else None

    def record(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False, default=str)
        with self.lock:
            self.records.append(entry)
            if self.record_path is not None:
                with self.record_path.open("a", encoding="utf-8") as file:
                    file.write(line + "\n")


def _query_messages(query: dict[str, list[str]]) -> list[Message]:
    return [
        Message(name, f"the {name} query parameter is required", Code.VALUE_REQUIRED, True)
        for name in ("measurement_id", "api_secret")
        if not query.get(name, [""])[0]
    ]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line holds the API secret."""

    def do_GET(self) -> None:
        if urlsplit(self.path).path == REQUESTS_PATH:
            with self.server.state.lock:
                records = list(self.server.state.records)
            self._answer(200, json.dumps(records, default=str).encode())
        else:
            self._answer(404, b"")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path == FAULTS_PATH:
            self._plan_faults(raw)
        elif url.path in (COLLECT_PATH, DEBUG_PATH):
            self._collect(url.path, parse_qs(url.query), raw)
        elif url.path == INGEST_PATH:
            self._ingest(raw)
        else:
            self._answer(404, b"")

    def _plan_faults(self, raw: bytes) -> None:
        try:
            value = json.loads(raw)
            fault, times = Fault.from_json(value)
            seconds = float(value["for_seconds"]) if "for_seconds" in value else None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._answer(400, str(exc).encode())
            return
        if seconds is None:
            self.server.state.plan(fault, times)
        else:
            self.server.state.plan_for(fault, seconds)
        self._answer(204, b"")

    def _collect(self, path: str, query: dict[str, list[str]], raw: bytes) -> None:
        received = time.time_ns() // 1000
        fault = self.server.state.next_fault() or Fault()
        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        body, parse_messages = parse_body(raw)
        messages = [*_query_messages(query), *parse_messages]
        if body is not None:
            messages.extend(validate(body, now_micros=received).messages)
        status = fault.status or (200 if path == DEBUG_PATH else 204)
        self.server.state.record(
            {
                "received_at_micros": received,
                "path": path,
                "measurement_id": query.get("measurement_id", [None])[0],
                "event_id": self._event_id(),
                "body": body if body is not None else raw.decode("utf-8", "backslashreplace"),
                "validation_messages": [message.as_ga4() for message in messages],
                "status": status,
            }
        )
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if fault.status is not None:
            self._answer(status, b"", headers)
        elif path == DEBUG_PATH:
            answer = {"validationMessages": [message.as_ga4() for message in messages]}
            self._answer(200, json.dumps(answer).encode())
        else:
            self._answer(204, b"")

    def _ingest(self, raw: bytes) -> None:
        """``IngestionService.IngestEvents`` over REST (module docstring)."""
        received = time.time_ns() // 1000
        fault = self.server.state.next_fault() or Fault()
        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        checked = datamanager_ingest.check(raw, now_micros=received)
        request = checked.request
        status = fault.status or (200 if checked.accepted else 400)
        request_id = uuid4().hex
        hits: list[tuple[str | None, str | None, Any]] = list(
            datamanager_hits.event_hits(request, self._event_ids())
        )
        if not hits:
            hits = [(self._event_id(), None, raw.decode("utf-8", "backslashreplace"))]
        for index, (event_id, measurement_id, body) in enumerate(hits):
            self.server.state.record(
                {
                    "received_at_micros": received,
                    "path": INGEST_PATH,
                    "measurement_id": measurement_id,
                    "event_id": event_id,
                    "body": body,
                    "validation_messages": [v.as_json() for v in checked.violations],
                    "status": status,
                    # The request as sent, once per request (a batch's records share it).
                    "request": request if index == 0 else None,
                    "validate_only": bool(request and request.get("validateOnly")),
                    "ads_conversions": datamanager_hits.ads_conversions(request)
                    if index == 0
                    else [],
                    "request_id": request_id,
                    "hit": index,
                    "hits": len(hits),
                }
            )
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if fault.status is not None:
            self._answer(fault.status, _rpc_error(fault.status), headers)
        elif checked.accepted:
            self._answer(200, datamanager_ingest.success_body(request_id))
        else:
            self._answer(400, datamanager_ingest.error_body(checked.violations, request_id))

    def _event_id(self) -> str | None:
        header = self.headers.get(EVENT_ID_HEADER)
        return unquote(header) if header else None

    def _event_ids(self) -> list[str | None]:
        """The forwarder's ``X-Ga4-Stitch-Event-Ids`` (one id per GA4 event of a Data
        Manager request), else its single ``X-Ga4-Stitch-Event-Id``, else none."""
        header = self.headers.get(EVENT_IDS_HEADER)
        if header:
            return [unquote(part) or None for part in header.split(",")]
        return [self._event_id()]

    def _answer(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _rpc_error(status: int) -> bytes:
    """A ``google.rpc.Status`` JSON for an HTTP status (a planned fault on the DM path)."""
    code = RPC_STATUS.get(status, "UNKNOWN" if status >= 500 else "FAILED_PRECONDITION")
    return json.dumps(
        {"error": {"code": status, "message": f"local fault: {code}", "status": code}}
    ).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    """Connections waiting to be accepted. The standard library's 5 overflows when a
    forward instance's deliveries, released together from a shared Firestore request,
    open connections at once: the kernel then drops or resets them after the request was
    written, an unknown outcome the forwarder counts as taken. GA4's front ends queue
    far more than that."""

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        super().__init__(address, _Handler)
        self.state = state


class LocalGa4:
    """The endpoint on a free port for the duration of a ``with`` block."""

    def __init__(self, record_path: Path | None = None, host: str = "127.0.0.1", port: int = 0):
        self._state = _State(record_path)
        self._server = _Server((host, port), self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LocalGa4:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(
        self, times: int = 1, status: int = 503, retry_after: float | None = None
    ) -> None:
        self._state.plan(Fault(status=status, retry_after=retry_after), times)

    def delay_next(self, times: int, seconds: float) -> None:
        self._state.plan(Fault(delay_seconds=seconds), times)

    def fail_for(self, seconds: float, status: int = 503, retry_after: float | None = None) -> None:
        """An outage: every request for ``seconds`` answers ``status``."""
        self._state.plan_for(Fault(status=status, retry_after=retry_after), seconds)

    def requests(self) -> list[dict[str, Any]]:
        """Every request received so far, in arrival order of their records."""
        with self._state.lock:
            return list(self._state.records)

    def accepted(self) -> list[dict[str, Any]]:
        """Requests that GA4 would have processed: ``/mp/collect`` or ``/v1/events:ingest``
        answered 2xx (not a ``validateOnly`` one)."""
        return [r for r in self.requests() if is_accepted(r)]

    def reported(self) -> list[dict[str, Any]]:
        """What GA4 would report for the accepted requests so far, event by event, with
        ``campaign_details`` of any accepted request attributing later events of its client
        (``ga4_stitch.parity``)."""
        from ga4_stitch.parity import report_requests

        return report_requests(record["body"] for record in self.accepted())


def is_accepted(record: Mapping[str, Any]) -> bool:
    """Whether a record is of a request GA4 ingested (``accepted``), from either API."""
    try:
        status = int(record.get("status", 500))
    except (TypeError, ValueError):
        return False
    if record.get("path") == INGEST_PATH:
        # A request with no event for GA4 (Google Ads only) records no MP body.
        return (
            status < 300
            and not record.get("validate_only")
            and isinstance(record.get("body"), dict)
        )
    return record.get("path") == COLLECT_PATH and status < 300


def serve(
    host: str, port: int, record: Path | None, fail_plan: Iterable[dict[str, Any]] = ()
) -> None:
    """Run the endpoint in the foreground until interrupted (the local pipeline's GA4)."""
    state = _State(record)
    for entry in fail_plan:
        state.plan(*Fault.from_json(entry))
    server = _Server((host, port), state)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Local GA4 endpoint (Measurement Protocol and Data Manager API)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--record", type=Path, default=None, help="NDJSON file of requests")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=json.loads,
        help='JSON such as {"times": 2, "status": 503, "retry_after": 1}; repeatable',
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.record, args.fault)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
