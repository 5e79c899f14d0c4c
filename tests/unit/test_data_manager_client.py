"""The Data Manager adapter: its error map row by row, and the official client end to end
against a local ``/v1/events:ingest``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import urllib3.exceptions
from google.api_core import exceptions as api_exceptions
from google.rpc import error_details_pb2

from ga4_stitch.ga4_endpoint import LocalGa4
from shared.adapters.data_manager import (
    DataManagerClient,
    DataManagerUnavailable,
    is_local_endpoint,
    translated,
)
from shared.adapters.destinations import DestinationRouter
from shared.domain.datamanager import DataManagerDestination, DestinationPlan, ingest_request
from shared.domain.measurement import PayloadRules, build_request
from shared.domain.messages import json_bytes
from shared.domain.validation import validate
from shared.errors import PermanentError, SettingsError, TransientError
from shared.ports import Ga4OutcomeUnknown
from tests.unit.test_datamanager_mapping import NOW, enriched

PLAN = DestinationPlan(
    default="data_manager",
    data_manager={"G-SHOP": DataManagerDestination("123456789", "G-SHOP")},
    measurement_ids=frozenset({"G-SHOP"}),
)


def body_bytes(name: str = "purchase", now: int = NOW) -> bytes:
    """What the forward service hands the sender: the Data Manager request, mapped."""
    event = enriched(name, timestamp_micros=now)
    request = build_request(event, PayloadRules(default_measurement_id="G-SHOP"))
    repaired = validate(request.body, now_micros=now).body
    return json_bytes(ingest_request(repaired, PLAN.data_manager_for("G-SHOP")))


def refused(reason: str, field: str) -> api_exceptions.InvalidArgument:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="datamanager.googleapis.com")
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description="bad")
        ]
    )
    return api_exceptions.InvalidArgument("refused", details=[info, bad], error_info=info)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (api_exceptions.ServiceUnavailable("down"), DataManagerUnavailable),
        (api_exceptions.TooManyRequests("slow down"), DataManagerUnavailable),
        (api_exceptions.ResourceExhausted("quota"), DataManagerUnavailable),
        (api_exceptions.InternalServerError("oops"), DataManagerUnavailable),
        (api_exceptions.BadGateway("proxy"), DataManagerUnavailable),
        (api_exceptions.Aborted("try again"), DataManagerUnavailable),
        (api_exceptions.Unauthenticated("expired token"), DataManagerUnavailable),
        (api_exceptions.DeadlineExceeded("late"), Ga4OutcomeUnknown),
        (api_exceptions.GatewayTimeout("late"), Ga4OutcomeUnknown),
        (api_exceptions.Cancelled("cancelled"), Ga4OutcomeUnknown),
        (api_exceptions.PermissionDenied("no access"), PermanentError),
        (api_exceptions.NotFound("no property"), PermanentError),
        (api_exceptions.FailedPrecondition("terms"), PermanentError),
        (refused("INVALID_EVENT_NAME", "events[0].event_name"), PermanentError),
        (requests.exceptions.ConnectTimeout("connect"), DataManagerUnavailable),
        (
            requests.exceptions.ConnectionError(
                urllib3.exceptions.NewConnectionError(None, "refused")
            ),  # type: ignore[arg-type]
            DataManagerUnavailable,
        ),
        (requests.exceptions.ReadTimeout("read"), Ga4OutcomeUnknown),
        (requests.exceptions.ConnectionError("reset by peer"), Ga4OutcomeUnknown),
        (ValueError("not JSON"), Ga4OutcomeUnknown),
    ],
    ids=lambda value: type(value).__name__,
)
def test_each_failure_maps_to_one_outcome(error: BaseException, expected: type) -> None:
    """Not taken -> retried transient; maybe taken -> unknown outcome; refused -> permanent."""
    result = translated(error)
    assert type(result) is expected


def test_a_refusal_carries_the_apis_reason_and_field() -> None:
    """ErrorInfo.reason becomes the dead letter's reason; BadRequest gives the field."""
    result = translated(refused("EVENT_TIME_INVALID", "events[0].event_timestamp"))
    assert isinstance(result, PermanentError)
    assert result.reason == "data_manager_event_time_invalid"
    detail = json.loads(result.detail)
    assert detail["status"] == "INVALID_ARGUMENT"
    assert detail["reason"] == "EVENT_TIME_INVALID"
    assert detail["field"] == "events[0].event_timestamp"


def test_a_rest_refusal_reads_the_json_details() -> None:
    """Over REST the details arrive as dicts with @type; they are read the same way."""
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INVALID_EVENT_NAME"}
    bad = {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": "events[1].event_name", "description": "reserved"}],
    }
    error = api_exceptions.BadRequest("refused", details=[info, bad], error_info=info)
    result = translated(error)
    assert isinstance(result, PermanentError)
    assert result.reason == "data_manager_invalid_event_name"
    assert json.loads(result.detail)["field"] == "events[1].event_name"


def test_a_refusal_without_error_info_is_named_by_its_status() -> None:
    """No ErrorInfo: the status name is the reason."""
    result = translated(api_exceptions.PermissionDenied("no"))
    assert isinstance(result, PermanentError)
    assert result.reason == "data_manager_permission_denied"


def test_retry_info_sets_the_wait() -> None:
    """A RetryInfo delay is the wait the retry policy honours."""
    info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}
    result = translated(api_exceptions.ResourceExhausted("quota", details=[info]))
    assert isinstance(result, DataManagerUnavailable)
    assert result.retry_after == 7.0


def test_local_endpoints_get_no_credentials() -> None:
    """localhost and plain http are local; Google's host is not."""
    assert is_local_endpoint("http://10.0.0.5:8080")
    assert is_local_endpoint("https://127.0.0.1:443")
    assert not is_local_endpoint("https://datamanager.googleapis.com")


class ScriptedClient:
    """``ingest_events`` raising the scripted errors first, then succeeding."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls: list[dict[str, Any]] = []

    def ingest_events(self, request: Any, retry: Any, timeout: float, metadata: Any = ()) -> None:
        self.calls.append(
            {"request": request, "retry": retry, "timeout": timeout, "metadata": metadata}
        )
        if self.errors:
            raise self.errors.pop(0)


def sender(client: ScriptedClient, waits: list[float]) -> DataManagerClient:
    return DataManagerClient(client=client, sleep=waits.append, jitter=lambda low, high: high)


def test_unavailable_is_retried_with_the_backoff_and_the_librarys_retry_off() -> None:
    """503 twice then success: three calls, waits 1 and 2 s, retry=None each time."""
    client, waits = (
        ScriptedClient(
            api_exceptions.ServiceUnavailable("x"), api_exceptions.ServiceUnavailable("x")
        ),
        [],
    )
    sender(client, waits).send("G-SHOP", body_bytes(), event_id="e-1")
    assert len(client.calls) == 3
    assert waits == [1.0, 2.0]
    assert all(call["retry"] is None for call in client.calls)


def test_each_attempt_names_the_event_of_each_ga4_event_it_carries() -> None:
    """The event id travels as request metadata (a header on REST), once per GA4 event
    (campaign_details and purchase here), percent-quoted."""
    client, waits = ScriptedClient(api_exceptions.ServiceUnavailable("x")), []
    sender(client, waits).send("G-SHOP", body_bytes(), event_id="e 1/2")
    assert [call["metadata"] for call in client.calls] == [
        (("x-ga4-stitch-event-ids", "e%201%2F2,e%201%2F2"),)
    ] * 2


def test_an_unknown_outcome_is_never_resent() -> None:
    """DEADLINE_EXCEEDED: one call, Ga4OutcomeUnknown raised at once."""
    client, waits = ScriptedClient(api_exceptions.DeadlineExceeded("late")), []
    with pytest.raises(Ga4OutcomeUnknown):
        sender(client, waits).send("G-SHOP", body_bytes())
    assert len(client.calls) == 1


def test_a_refusal_is_not_retried() -> None:
    """INVALID_ARGUMENT: one call, PermanentError with the API's reason."""
    client, waits = ScriptedClient(refused("INVALID_EVENT_NAME", "events[0].event_name")), []
    with pytest.raises(PermanentError, match="data_manager_invalid_event_name"):
        sender(client, waits).send("G-SHOP", body_bytes())
    assert len(client.calls) == 1


def test_the_budget_ends_the_retries_with_a_transient_error() -> None:
    """Always unavailable: the last error is raised so Pub/Sub redelivers."""
    client = ScriptedClient(*[api_exceptions.ServiceUnavailable("x")] * 10)
    with pytest.raises(TransientError):
        sender(client, []).send("G-SHOP", body_bytes())
    assert len(client.calls) == 4


def test_validate_remote_is_no_round_trip() -> None:
    """The Data Manager path has no validate call."""
    client = ScriptedClient()
    assert sender(client, []).validate_remote("G-SHOP", body_bytes()) == []
    assert client.calls == []


class MeasurementProtocolSpy:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, measurement_id: str, body: bytes, event_id: str | None = None) -> None:
        self.sent.append(measurement_id)

    def validate_remote(self, measurement_id: str, body: bytes) -> list[dict[str, Any]]:
        return [{"validationCode": "VALUE_INVALID"}]


def test_the_router_sends_each_stream_through_its_destination() -> None:
    """G-MP to the Measurement Protocol, G-SHOP to the Data Manager API."""
    plan = DestinationPlan(
        streams={"G-SHOP": "data_manager"},
        data_manager={"G-SHOP": DataManagerDestination("1", "G-SHOP")},
        measurement_ids=frozenset({"G-MP", "G-SHOP"}),
    )
    mp, client = MeasurementProtocolSpy(), ScriptedClient()
    router = DestinationRouter(
        plan,
        {"measurement_protocol": mp, "data_manager": DataManagerClient(client=client)},
    )
    router.send("G-MP", body_bytes())
    router.send("G-SHOP", body_bytes())
    assert mp.sent == ["G-MP"]
    assert len(client.calls) == 1
    with pytest.raises(SettingsError):
        DestinationRouter(plan, {"measurement_protocol": mp})


class IngestHandler(BaseHTTPRequestHandler):
    """A minimal ``POST /v1/events:ingest``: scripted statuses, then 200 with a request id."""

    server: IngestServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append((self.path, json.loads(raw), dict(self.headers)))
        status, payload = (
            self.server.answers.pop(0) if self.server.answers else (200, {"requestId": "r-1"})
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


class IngestServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), IngestHandler)
        self.received: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.answers: list[tuple[int, dict[str, Any]]] = []


@pytest.fixture
def server() -> Iterator[IngestServer]:
    httpd = IngestServer()
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def official(server: IngestServer, waits: list[float]) -> DataManagerClient:
    host, port = server.server_address[:2]
    return DataManagerClient(
        endpoint=f"http://{host!s}:{port}",
        timeout_seconds=5.0,
        sleep=waits.append,
        jitter=lambda low, high: 0.0,
    )


def test_the_official_client_posts_the_mapped_request(server: IngestServer) -> None:
    """One POST to /v1/events:ingest with the GA4 destination, events and no credentials."""
    official(server, []).send("G-SHOP", body_bytes(), event_id="e-1")
    [(path, payload, headers)] = server.received
    assert path.split("?")[0] == "/v1/events:ingest"
    assert "authorization" not in {name.lower() for name in headers}
    assert payload["destinations"][0]["productDestinationId"] == "G-SHOP"
    # The client sends enums as numbers (``enum-encoding=int``): 5 is GOOGLE_ANALYTICS_PROPERTY.
    assert payload["destinations"][0]["operatingAccount"]["accountType"] in (
        5,
        "GOOGLE_ANALYTICS_PROPERTY",
    )
    purchase = payload["events"][-1]
    assert purchase["eventName"] == "purchase"
    assert purchase["transactionId"] == "T-100045"
    assert purchase["eventTimestamp"] == "2025-11-22T08:29:14.123456Z"
    assert payload["encoding"] in (1, "HEX")


def test_the_official_client_retries_a_503_then_succeeds(server: IngestServer) -> None:
    """503 then 200: two POSTs, one wait."""
    server.answers = [(503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "down"}})]
    waits: list[float] = []
    official(server, waits).send("G-SHOP", body_bytes())
    assert len(server.received) == 2
    assert len(waits) == 1


def test_the_official_client_dead_letters_a_400_with_its_reason(server: IngestServer) -> None:
    """400 with ErrorInfo and BadRequest: PermanentError naming reason and field, no retry."""
    server.answers = [
        (
            400,
            {
                "error": {
                    "code": 400,
                    "status": "INVALID_ARGUMENT",
                    "message": "Request contains an invalid argument.",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "INVALID_EVENT_NAME",
                            "domain": "datamanager.googleapis.com",
                        },
                        {
                            "@type": "type.googleapis.com/google.rpc.BadRequest",
                            "fieldViolations": [
                                {"field": "events[1].event_name", "description": "bad"}
                            ],
                        },
                    ],
                }
            },
        )
    ]
    with pytest.raises(PermanentError) as caught:
        official(server, []).send("G-SHOP", body_bytes())
    assert caught.value.reason == "data_manager_invalid_event_name"
    assert json.loads(caught.value.detail)["field"] == "events[1].event_name"
    assert len(server.received) == 1


def test_the_official_client_against_the_local_ga4_endpoint() -> None:
    """The project's local endpoint takes the request and records it as accepted."""
    with LocalGa4() as ga4:
        client = DataManagerClient(endpoint=ga4.url, sleep=lambda _: None)
        client.send("G-SHOP", body_bytes(now=time.time_ns() // 1_000), event_id="e-1")
        assert len(ga4.accepted()) == 1
