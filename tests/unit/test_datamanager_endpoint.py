"""The local GA4 endpoint's Data Manager API path, driven by the official client.

The client (``google.ads.datamanager_v1.IngestionServiceClient``, REST transport, anonymous
credentials) is pointed at the endpoint by its ``api_endpoint`` option, as the forwarder
points it; refusals are read back from the client's own exceptions.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from google.ads import datamanager_v1
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.auth.credentials import AnonymousCredentials

from ga4_stitch.datamanager_ingest import INGEST_PATH
from ga4_stitch.ga4_endpoint import LocalGa4

PROPERTY = "123456789"
MEASUREMENT_ID = "G-LOCAL00001"
HOUR_MICROS = 3600 * 1_000_000
NO_RETRY = gretry.Retry(predicate=lambda _: False)


def rfc3339(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1e6, UTC).isoformat().replace("+00:00", "Z")


def now_micros() -> int:
    return time.time_ns() // 1000


def valid_request(**event: Any) -> dict[str, Any]:
    """A request GA4 takes: one page_view to one GA4 web stream."""
    return {
        "destinations": [
            {
                "reference": "ga4",
                "operatingAccount": {
                    "accountType": "GOOGLE_ANALYTICS_PROPERTY",
                    "accountId": PROPERTY,
                },
                "productDestinationId": MEASUREMENT_ID,
            }
        ],
        "events": [
            {
                "destinationReferences": ["ga4"],
                "eventTimestamp": rfc3339(now_micros()),
                "eventName": "page_view",
                "clientId": "111.222",
                "additionalEventParameters": [
                    {"parameterName": "session_id", "value": "1700000000"},
                    {"parameterName": "engagement_time_msec", "value": "1"},
                ],
                **event,
            }
        ],
    }


@pytest.fixture
def ga4() -> Iterator[LocalGa4]:
    with LocalGa4() as endpoint:
        yield endpoint


@pytest.fixture
def client(ga4: LocalGa4) -> Any:
    return datamanager_v1.IngestionServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": ga4.url},
    )


def ingest(client: Any, request: dict[str, Any], **options: Any) -> Any:
    message = datamanager_v1.IngestEventsRequest.from_json(json.dumps(request))
    return client.ingest_events(request=message, retry=NO_RETRY, timeout=10, **options)


def refusal(client: Any, request: dict[str, Any]) -> gexc.GoogleAPICallError:
    with pytest.raises(gexc.BadRequest) as caught:
        ingest(client, request)
    return caught.value


def field_violations(error: gexc.GoogleAPICallError) -> list[dict[str, str]]:
    for detail in error.details:
        if isinstance(detail, dict) and detail.get("@type", "").endswith("google.rpc.BadRequest"):
            return list(detail["fieldViolations"])
    raise AssertionError(f"no BadRequest detail in {error.details}")


def test_a_valid_request_is_answered_with_a_request_id_and_recorded_as_a_hit(
    client: Any, ga4: LocalGa4
) -> None:
    """200 with a request id; the record carries the event id header and an MP body."""
    response = ingest(client, valid_request(), metadata=[("x-ga4-stitch-event-id", "ev-1")])

    assert response.request_id
    [record] = ga4.accepted()
    assert record["path"] == INGEST_PATH
    assert record["event_id"] == "ev-1"
    assert record["measurement_id"] == MEASUREMENT_ID
    assert record["body"]["client_id"] == "111.222"
    assert record["body"]["events"][0]["name"] == "page_view"
    assert record["body"]["events"][0]["params"]["session_id"] == 1700000000
    assert record["validation_messages"] == []


def test_a_refusal_is_a_google_rpc_status_with_error_info_and_field_violations(
    ga4: LocalGa4,
) -> None:
    """HTTP 400: error.code, message, status INVALID_ARGUMENT, ErrorInfo and BadRequest."""
    request = valid_request(eventName="session_start")

    answer = requests.post(ga4.url + INGEST_PATH, json=request, timeout=5)

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert "reserved" in error["message"]
    types = {detail["@type"].rsplit(".", 1)[1]: detail for detail in error["details"]}
    assert types["ErrorInfo"]["reason"] == "RESERVED_NAME_USED"
    assert types["ErrorInfo"]["domain"] == "datamanager.googleapis.com"
    assert types["BadRequest"]["fieldViolations"][0]["field"] == "events[0].event_name"
    assert types["RequestInfo"]["requestId"]
    assert ga4.accepted() == []


def _without(request: dict[str, Any], *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(request)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


def _with(request: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(request)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


BASE = valid_request()
OLD = rfc3339(now_micros() - 73 * HOUR_MICROS)
ADS = {
    "reference": "ads",
    "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
}
REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    ("no destinations", _without(BASE, "destinations"), "destinations", "REQUIRED_FIELD_MISSING"),
    ("no events", _without(BASE, "events"), "events", "REQUIRED_FIELD_MISSING"),
    (
        "no operating account",
        _without(BASE, "destinations", 0, "operatingAccount"),
        "destinations[0].operating_account",
        "REQUIRED_FIELD_MISSING",
    ),
    (
        "no account id",
        _without(BASE, "destinations", 0, "operatingAccount", "accountId"),
        "destinations[0].operating_account.account_id",
        "REQUIRED_FIELD_MISSING",
    ),
    (
        "no measurement id",
        _without(BASE, "destinations", 0, "productDestinationId"),
        "destinations[0].product_destination_id",
        "REQUIRED_FIELD_MISSING",
    ),
    (
        "a Google Ads destination without conversion action",
        _with(BASE, [*BASE["destinations"], ADS], "destinations"),
        "destinations[1].product_destination_id",
        "REQUIRED_FIELD_MISSING",
    ),
    (
        "a login account other than the property",
        _with(
            BASE,
            {"accountType": "GOOGLE_ANALYTICS_PROPERTY", "accountId": "999"},
            "destinations",
            0,
            "loginAccount",
        ),
        "destinations[0].login_account",
        "OPERATING_ACCOUNT_LOGIN_ACCOUNT_MISMATCH",
    ),
    (
        "a reference used twice",
        _with(BASE, [BASE["destinations"][0]] * 2, "destinations"),
        "destinations[1].reference",
        "DUPLICATE_DESTINATION_REFERENCE",
    ),
    (
        "an unknown destination reference",
        _with(BASE, ["nowhere"], "events", 0, "destinationReferences"),
        "events[0].destination_references[0]",
        "INVALID_DESTINATION",
    ),
    (
        "no event timestamp",
        _without(BASE, "events", 0, "eventTimestamp"),
        "events[0].event_timestamp",
        "REQUIRED_FIELD_MISSING",
    ),
    (
        "an event more than 72 hours old",
        _with(BASE, OLD, "events", 0, "eventTimestamp"),
        "events[0].event_timestamp",
        "EVENT_TIME_INVALID",
    ),
    (
        "no event name",
        _without(BASE, "events", 0, "eventName"),
        "events[0].event_name",
        "REQUIRED_FIELD_MISSING",
    ),
    (
        "an invalid event name",
        _with(BASE, "page-view", "events", 0, "eventName"),
        "events[0].event_name",
        "INVALID_EVENT_NAME",
    ),
    (
        "a reserved event name",
        _with(BASE, "user_engagement", "events", 0, "eventName"),
        "events[0].event_name",
        "RESERVED_NAME_USED",
    ),
    (
        "a reserved event prefix",
        _with(BASE, "google_thing", "events", 0, "eventName"),
        "events[0].event_name",
        "RESERVED_NAME_USED",
    ),
    (
        "no client id",
        _without(BASE, "events", 0, "clientId"),
        "events[0].client_id",
        "REQUIRED_FIELD_MISSING",
    ),
    (
        "a client id and an app instance id",
        _with(BASE, "app-1", "events", 0, "appInstanceId"),
        "events[0].app_instance_id",
        "BOTH_CLIENT_ID_AND_APP_INSTANCE_ID_NOT_ALLOWED",
    ),
    (
        "a reserved parameter name",
        _with(
            BASE,
            [{"parameterName": "ga_session", "value": "1"}],
            "events",
            0,
            "additionalEventParameters",
        ),
        "events[0].additional_event_parameters[0].parameter_name",
        "RESERVED_NAME_USED",
    ),
    (
        "a parameter without a value",
        _with(BASE, [{"parameterName": "plan"}], "events", 0, "additionalEventParameters"),
        "events[0].additional_event_parameters[0].value",
        "REQUIRED_FIELD_MISSING",
    ),
    (
        "a reserved user property",
        _with(
            BASE,
            {"additionalUserProperties": [{"propertyName": "first_open_time", "value": "1"}]},
            "events",
            0,
            "userProperties",
        ),
        "events[0].user_properties.additional_user_properties[0].property_name",
        "RESERVED_NAME_USED",
    ),
    (
        "eleven user identifiers",
        _with(
            BASE,
            {"userIdentifiers": [{"emailAddress": f"{n:064x}"} for n in range(11)]},
            "events",
            0,
            "userData",
        ),
        "events[0].user_data.user_identifiers",
        "TOO_MANY_USER_IDENTIFIERS",
    ),
    (
        "an event to two GA4 destinations",
        _with(
            _with(
                BASE,
                [BASE["destinations"][0], {**BASE["destinations"][0], "reference": "ga4b"}],
                "destinations",
            ),
            ["ga4", "ga4b"],
            "events",
            0,
            "destinationReferences",
        ),
        "events[0].destination_references",
        "MULTIPLE_DESTINATIONS_FOR_GOOGLE_ANALYTICS_EVENT",
    ),
]


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [pytest.param(body, field, reason, id=name) for name, body, field, reason in REFUSALS],
)
def test_each_documented_refusal_names_its_field_and_reason(
    client: Any, ga4: LocalGa4, request_body: dict[str, Any], field: str, reason: str
) -> None:
    """The official client raises BadRequest; ErrorInfo and the field violation agree."""
    error = refusal(client, request_body)

    assert error.reason == reason
    assert error.domain == "datamanager.googleapis.com"
    assert {"field": field, "reason": reason} in [
        {"field": v["field"], "reason": v["reason"]} for v in field_violations(error)
    ]
    assert ga4.accepted() == []


def test_more_than_2000_events_are_refused(client: Any) -> None:
    """The request's events list is capped at 2,000."""
    request = valid_request()
    request["events"] = request["events"] * 2001

    error = refusal(client, request)

    assert error.reason == "TOO_MANY_EVENTS"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"events": [{"eventTimestamp": "yesterday"}]}', id="bad timestamp"),
        pytest.param(b'{"events": [{"eventTimestamp": "2026-01-01T00:00:00"}]}', id="no zone"),
        pytest.param(b'{"events": [{"unknownField": 1}]}', id="unknown field"),
        pytest.param(b'{"events": [', id="not JSON"),
    ],
)
def test_a_body_the_official_types_cannot_parse_is_refused(ga4: LocalGa4, body: bytes) -> None:
    """Malformed timestamps, unknown fields and broken JSON: 400 INVALID_FORMAT."""
    answer = requests.post(
        ga4.url + INGEST_PATH, data=body, headers={"Content-Type": "application/json"}, timeout=5
    )

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == "INVALID_FORMAT"
    assert ga4.accepted() == []


def test_a_validate_only_request_is_answered_but_not_ingested(client: Any, ga4: LocalGa4) -> None:
    """validateOnly checks the request and ingests nothing."""
    ingest(client, {**valid_request(), "validateOnly": True})

    assert len(ga4.requests()) == 1
    assert ga4.accepted() == []


def test_a_planned_failure_answers_the_status_with_a_google_rpc_status(
    client: Any, ga4: LocalGa4
) -> None:
    """fail_next applies to the ingest path: 503 UNAVAILABLE, then the next one passes."""
    ga4.fail_next(1, status=503, retry_after=1)

    with pytest.raises(gexc.ServiceUnavailable):
        ingest(client, valid_request())
    ingest(client, valid_request())

    assert [record["status"] for record in ga4.requests()] == [503, 200]
    assert len(ga4.accepted()) == 1


def test_an_outage_refuses_every_request_until_it_ends(client: Any, ga4: LocalGa4) -> None:
    """fail_for applies to the ingest path: 429 for its duration, then 200."""
    ga4.fail_for(0.5, status=429)

    with pytest.raises(gexc.TooManyRequests):
        ingest(client, valid_request())
    time.sleep(0.6)
    ingest(client, valid_request())

    assert [record["status"] for record in ga4.requests()] == [429, 200]


def test_a_slow_answer_outlasts_the_client_timeout(client: Any, ga4: LocalGa4) -> None:
    """delay_next applies to the ingest path: the client times out, the event is recorded."""
    ga4.delay_next(1, seconds=1.0)

    message = datamanager_v1.IngestEventsRequest.from_json(json.dumps(valid_request()))
    with pytest.raises((gexc.GoogleAPIError, requests.exceptions.RequestException)):
        client.ingest_events(request=message, retry=NO_RETRY, timeout=0.3)
    time.sleep(1.0)

    assert len(ga4.accepted()) == 1


def test_faults_planned_over_http_apply_to_the_ingest_path(client: Any, ga4: LocalGa4) -> None:
    """POST /__admin/faults from another process plans faults for this path too."""
    requests.post(ga4.url + "/__admin/faults", json={"times": 1, "status": 500}, timeout=5)

    with pytest.raises(gexc.InternalServerError):
        ingest(client, valid_request())

    assert ga4.requests()[0]["status"] == 500
