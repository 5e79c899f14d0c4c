"""The GA4 HTTP client against the real local GA4 endpoint, and the endpoint itself."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ga4_stitch.emulators import free_port
from ga4_stitch.ga4_endpoint import LocalGa4
from shared.adapters.ga4_http import Ga4Client, retry_after_seconds
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


def test_a_429_waits_for_retry_after_capped(ga4: LocalGa4, sleeps: list[float]) -> None:
    """Retry-After is honoured, but never beyond the cap."""
    ga4.fail_next(1, status=429, retry_after=1)
    ga4.fail_next(1, status=429, retry_after=120)
    client_for(ga4.url, sleeps, max_retry_after=5.0).send("G-TEST", VALID)
    assert sleeps == [1.0, 5.0]
    assert [r["status"] for r in ga4.requests()] == [429, 429, 204]


def test_a_timeout_is_retried(ga4: LocalGa4, sleeps: list[float]) -> None:
    """A read timeout is a network error: the request is sent again."""
    ga4.delay_next(1, seconds=1.0)
    client_for(ga4.url, sleeps, timeout_seconds=0.3).send("G-TEST", VALID)
    assert len(sleeps) == 1


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
        assert requests.utils.quote(SECRET, safe="") not in text
        assert "s3cr3t" not in text


def test_each_stream_uses_its_own_secret(ga4: LocalGa4, sleeps: list[float]) -> None:
    """Routed streams carry their own API secret; others use the default one."""
    urls: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, **_: urls.append(response.request.url))
    client = Ga4Client(
        endpoint=ga4.url,
        api_secret="default-secret",
        stream_secrets={"G-SHOP": "shop-secret"},
        sleep=sleeps.append,
        session=session,
    )
    client.send("G-SHOP", VALID)
    client.send("G-OTHER", VALID)
    assert "api_secret=shop-secret" in urls[0]
    assert "api_secret=default-secret" in urls[1]


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
    [(None, None), ("2", 2.0), ("0.5", 0.5), ("600", 5.0), ("Wed, 21 Oct", None)],
)
def test_retry_after_is_read_in_seconds_and_capped(
    header: str | None, expected: float | None
) -> None:
    """HTTP-date Retry-After falls back to exponential backoff."""
    assert retry_after_seconds(header, 5.0) == expected


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
