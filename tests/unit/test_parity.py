"""GA4 report parity: how a recorded MP request reads in GA4, and the truth it is held to."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from dataclasses import replace
from typing import Any

import pytest
import requests

from ga4_stitch.agents import AGENTS
from ga4_stitch.cli import main
from ga4_stitch.ga4_endpoint import LocalGa4
from ga4_stitch.parity import DIMENSIONS, format_parity, parity, report_requests, reported
from ga4_stitch.replay import sent_line
from ga4_stitch.score import score
from ga4_stitch.simulate import (
    DENIED,
    GRANTED,
    UNSET,
    Simulation,
    SimulationConfig,
    gcd_letter,
    simulate,
    true_traffic_source,
)
from shared.domain.consent import decode_gcd

IPHONE = AGENTS[[a.name for a in AGENTS].index("safari-iphone-ios18")].user_agent
T0 = 1_763_800_000_000_000


def body(**fields: Any) -> dict[str, Any]:
    events = fields.pop("events", [{"name": "page_view", "params": {}}])
    return {"client_id": "1.2", "timestamp_micros": T0, **fields, "events": events}


def campaign(source: str, at: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "name": "campaign_details",
        "params": {"source": source, "medium": "email", "campaign": "c"},
    }
    if at is not None:
        event["timestamp_micros"] = at
    return event


# --------------------------------------------------------------------------- precedence


def test_a_device_object_hides_the_user_agent() -> None:
    """With ``device`` present GA4 reads only it, even for fields it leaves out."""
    device = {"category": "desktop", "browser": "Firefox", "operating_system": "Windows"}
    (event,) = reported(body(device=device, user_agent=IPHONE))
    assert (event["device_category"], event["browser"], event["operating_system"]) == (
        "desktop",
        "Firefox",
        "Windows",
    )
    (partial,) = reported(body(device={"language": "en-US"}, user_agent=IPHONE))
    assert partial["device_category"] is None
    assert partial["browser"] is None


def test_the_user_agent_is_parsed_when_there_is_no_device() -> None:
    """Without ``device`` the raw agent decides category, browser and system."""
    (event,) = reported(body(user_agent=IPHONE))
    assert (event["device_category"], event["browser"], event["operating_system"]) == (
        "mobile",
        "Safari",
        "iOS",
    )
    (unknown,) = reported(body())
    assert unknown["device_category"] is None


def test_country_comes_from_user_location_and_never_from_the_ip() -> None:
    """``user_location.country_id`` wins; an ``ip_override`` alone gives no country here."""
    located = body(user_location={"country_id": "BR", "region_id": "BR-SP"}, ip_override="1.1.1.1")
    assert reported(located)[0]["country"] == "BR"
    assert reported(body(ip_override="203.0.113.7"))[0]["country"] is None


def test_campaign_details_apply_to_later_events_of_the_client_across_requests() -> None:
    """A touch in one request attributes the client's events at or after its time in
    other requests, not earlier ones and not other clients'."""
    requests = [
        body(timestamp_micros=T0 + 100, events=[campaign("newsletter")]),
        body(timestamp_micros=T0 + 50),
        body(timestamp_micros=T0 + 100),
        body(timestamp_micros=T0 + 900),
        body(client_id="9.9", timestamp_micros=T0 + 900),
    ]
    sources = [event["session_source"] for event in report_requests(requests)]
    assert sources[0] is None
    assert sources[1] == sources[2] == {"source": "newsletter", "medium": "email", "campaign": "c"}
    assert sources[3] is None


def test_the_latest_touch_before_an_event_wins_and_event_timestamps_count() -> None:
    """Of two touches the later one at or before the event applies; an event's own
    ``timestamp_micros`` overrides its request's."""
    requests = [
        body(events=[campaign("first", at=T0), campaign("second", at=T0 + 500)]),
        body(events=[{"name": "scroll", "params": {}, "timestamp_micros": T0 + 499}]),
        body(events=[{"name": "scroll", "params": {}, "timestamp_micros": T0 + 501}]),
    ]
    reports = report_requests(requests)
    assert [event["session_source"]["source"] for event in reports] == ["first", "second"]


def test_campaign_details_is_not_a_reported_event() -> None:
    """It attributes the page_view beside it but is neither reported nor a SENT event."""
    request = body(
        events=[
            campaign("newsletter"),
            {"name": "page_view", "params": {"session_id": 17, "engagement_time_msec": 5}},
        ]
    )
    (event,) = reported(request)
    assert event["event_name"] == "page_view"
    assert event["session_source"]["source"] == "newsletter"
    assert sent_line("e1", request)["session_id"] == 17
    truth = {"e1": {"event_id": "e1", "valid": True, "client_id": "1.2", "session_key": "k"}}
    attribution = {"event_id": "e1", "request": body(events=[campaign("x")])}
    assert score(truth, [attribution, sent_line("e1", request)]).duplicates_sent == 0


def test_consent_user_properties_and_user_data_are_read_from_the_request() -> None:
    """MP shapes read back as GA4 shows them; ``non_personalized_ads`` denies personalisation."""
    (event,) = reported(
        body(
            consent={"ad_user_data": "GRANTED"},
            non_personalized_ads=True,
            user_properties={"membership": {"value": "gold"}},
            user_data={"sha256_email_address": ["0" * 64]},
        )
    )
    assert event["consent"] == {"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}
    assert event["user_properties"] == {"membership": "gold"}
    assert event["user_data"] is True
    assert reported(body())[0]["consent"] == {"ad_user_data": None, "ad_personalization": None}


def test_the_local_endpoint_reports_accepted_requests_with_attribution() -> None:
    """``LocalGa4.reported`` applies the same rules to what it accepted."""
    with LocalGa4() as ga4:
        for request in (body(events=[campaign("newsletter")]), body(user_agent=IPHONE)):
            url = f"{ga4.url}/mp/collect?measurement_id=G-1&api_secret=s"
            assert requests.post(url, json=request, timeout=5).status_code == 204
        (event,) = ga4.reported()
    assert event["browser"] == "Safari"
    assert event["session_source"]["source"] == "newsletter"


# --------------------------------------------------------------------------- the truth


@pytest.mark.parametrize(
    ("location", "referrer", "expected"),
    [
        ("https://shop.example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=w48",
         None, ("newsletter", "email", "w48")),
        ("https://shop.example.com/?utm_source=instagram&utm_medium=social",
         "https://l.instagram.com/", ("instagram", "social", "(not set)")),
        ("https://shop.example.com/?utm_campaign=winter+sale",
         None, ("(not set)", "(not set)", "winter sale")),
        ("https://shop.example.com/?gclid=abc", "https://www.google.com/",
         ("google", "cpc", "(not set)")),
        ("https://shop.example.com/", "https://www.google.com/",
         ("google", "organic", "(organic)")),
        ("https://shop.example.com/", "https://www.bing.com/", ("bing", "organic", "(organic)")),
        ("https://shop.example.com/", "https://duckduckgo.com/",
         ("duckduckgo", "organic", "(organic)")),
        ("https://shop.example.com/", "https://l.facebook.com/",
         ("l.facebook.com", "referral", "(referral)")),
        ("https://shop.example.com/", "https://news.ycombinator.com/item?id=1",
         ("news.ycombinator.com", "referral", "(referral)")),
        ("https://shop.example.com/", "https://www.reddit.com/r/x/",
         ("reddit.com", "referral", "(referral)")),
        ("https://shop.example.com/", None, ("(direct)", "(none)", "(direct)")),
        ("https://checkout.example-pay.com/pay", "https://shop.example.com/checkout",
         ("(direct)", "(none)", "(direct)")),
    ],
)  # fmt: skip
def test_each_landing_kind_has_its_ga4_traffic_source(
    location: str, referrer: str | None, expected: tuple[str, str, str]
) -> None:
    """UTM, gclid, search, referral and direct landings read as GA4 names them."""
    source = true_traffic_source(location, referrer)
    assert (source["source"], source["medium"], source["campaign"]) == expected


@pytest.mark.parametrize(
    ("default", "update", "letter"),
    [(UNSET, UNSET, "l"), (DENIED, UNSET, "p"), (DENIED, DENIED, "q"), (DENIED, GRANTED, "r"),
     (GRANTED, UNSET, "t"), (GRANTED, GRANTED, "v")],
)  # fmt: skip
def test_gcd_letters_follow_the_two_bit_rule(default: int, update: int, letter: str) -> None:
    """Each (default, update) pair gives the letter real ``x-ga-gcd`` strings use."""
    assert gcd_letter(default, update) == letter


@pytest.fixture(scope="module")
def stream() -> Simulation:
    return simulate(SimulationConfig(people=60, seed=5, start_micros=T0))


def valid_events(stream: Simulation) -> list[tuple[dict[str, Any], Any]]:
    truth = {record.event_id: record for record in stream.truth}
    seen: set[str] = set()
    pairs = []
    for payload in stream.deliveries:
        record = truth[payload["event_id"]]
        if record.valid and record.event_id not in seen:
            seen.add(record.event_id)
            pairs.append((payload, record))
    return pairs


def word(granted: bool | None) -> str | None:
    return None if granted is None else ("GRANTED" if granted else "DENIED")


def test_written_gcd_letters_decode_to_the_truth_consent(stream: Simulation) -> None:
    """The consent decoder reads each payload's ``x-ga-gcd`` as the truth states it, and
    ``_npa`` is "1" exactly when personalisation is denied."""
    states = set()
    for payload, record in valid_events(stream):
        signals = decode_gcd(payload.get("x-ga-gcd"))
        decoded = {
            "ad_user_data": word(signals.ad_user_data),
            "ad_personalization": word(signals.ad_personalization),
        }
        assert decoded == record.consent
        assert signals.analytics_storage in (True, None)
        npa = payload["x-ga-mp2-user_properties"]["_npa"]
        assert (npa == "1") is (record.consent["ad_personalization"] == "DENIED")
        states.add(tuple(decoded.values()))
    assert {("GRANTED", "GRANTED"), ("DENIED", "DENIED"), (None, None)} <= states


def test_a_simulated_streams_truth_is_self_consistent(stream: Simulation) -> None:
    """Device, geo, properties, user data and engagement truths restate the payload, and
    every event of a session shares the source its first event's landing implies."""
    agents = {(a.user_agent, json.dumps(a.client_hints, sort_keys=True)): a for a in AGENTS}
    sessions = defaultdict(list)
    for payload, record in valid_events(stream):
        hints = json.dumps(payload.get("client_hints"), sort_keys=True)
        agent = agents[(payload["user_agent"], hints)]
        assert not agent.truth.is_bot
        assert (record.device_category, record.browser, record.operating_system) == (
            agent.truth.category, agent.truth.browser, agent.truth.operating_system,
        )  # fmt: skip
        assert record.country == (payload.get("event_location") or {}).get("country")
        flat = payload["x-ga-mp2-user_properties"]
        assert record.user_properties == {k: v for k, v in flat.items() if k[0] != "_"}
        assert record.user_data is ("user_data" in payload)
        assert record.engagement_time_msec == payload.get("engagement_time_msec", 0)
        sessions[record.session_key].append((payload, record))
    for events in sessions.values():
        events.sort(key=lambda pair: (pair[1].time_micros, pair[1].event_id))
        first = events[0][0]
        assert first["x-ga-system_properties"]["ss"] == "1"
        implied = true_traffic_source(first["page_location"], first.get("page_referrer"))
        assert all(record.session_source == implied for _, record in events)
    media = {
        record.session_source["medium"] for events in sessions.values() for _, record in events
    }
    assert {"organic", "cpc", "referral", "(none)", "email"} <= media


def test_a_simulated_stream_has_the_realistic_features(stream: Simulation) -> None:
    """Hints, locations, engagement pings, purchases with user data and events without
    engagement time all occur; user data always holds an email hash."""
    payloads = [payload for payload, _ in valid_events(stream)]
    assert any("client_hints" in p for p in payloads)
    assert any("event_location" not in p for p in payloads)
    assert any(p["ip_override"].startswith("2001:db8:") for p in payloads)
    assert any(p["event_name"] == "user_engagement" for p in payloads)
    assert any("engagement_time_msec" not in p for p in payloads)
    with_data = [p for p in payloads if "user_data" in p]
    assert with_data
    assert all(p["event_name"] == "purchase" for p in with_data)
    assert all(len(p["user_data"]["sha256_email_address"]) == 64 for p in with_data)


# --------------------------------------------------------------------------- the parity report


def ideal_requests(stream: Simulation, *, naive: bool = False) -> list[dict[str, Any]]:
    """SENT lines a forwarder that follows GA4's rules would produce; ``naive`` sends the
    raw agent, no location, no campaign_details and 100 ms on events without engagement."""
    lines = []
    opened: set[str] = set()
    for payload, record in valid_events(stream):
        request: dict[str, Any] = {
            "client_id": record.client_id,
            "timestamp_micros": record.time_micros,
        }
        events = []
        first = record.session_key not in opened
        opened.add(str(record.session_key))
        if naive:
            request["user_agent"] = payload["user_agent"]
        else:
            request["device"] = {
                "category": record.device_category,
                "browser": record.browser,
                "operating_system": record.operating_system,
            }
            if record.country:
                request["user_location"] = {"country_id": record.country}
            if first:
                params = dict(record.session_source or {})
                start = record.session_start_micros
                events.append(
                    {"name": "campaign_details", "params": params, "timestamp_micros": start}
                )
        request["user_properties"] = {k: {"value": v} for k, v in record.user_properties.items()}
        request["consent"] = {k: v for k, v in record.consent.items() if v}
        if record.user_data:
            request["user_data"] = {"sha256_email_address": ["0" * 64]}
        engagement = record.engagement_time_msec or (100 if naive else 1)
        events.append(
            {"name": payload["event_name"], "params": {"engagement_time_msec": engagement}}
        )
        request["events"] = events
        lines.append(sent_line(record.event_id, request))
    return lines


def test_requests_that_follow_the_truth_reach_full_parity(stream: Simulation) -> None:
    """Every dimension is fully matched when requests say what the truth says, None
    countries and absent user data matching absent reports."""
    truth = {record.event_id: record.to_json() for record in stream.truth}
    result = parity(truth, ideal_requests(stream)).by_name()
    assert list(result) == list(DIMENSIONS)
    for row in result.values():
        assert row.compared > 0
        assert row.matched == row.compared, row
    assert result["engagement per session"].compared == len(
        {r.session_key for r in stream.truth if r.valid}
    )


def test_a_naive_forwarder_loses_parity_where_ga4_rules_bite(stream: Simulation) -> None:
    """Raw agents keep browser parity, but no location, no campaign_details and a 100 ms
    default cost country, sources and engagement."""
    truth = {record.event_id: record.to_json() for record in stream.truth}
    result = parity(truth, ideal_requests(stream, naive=True)).by_name()
    assert (result["browser"].share or 0.0) > 0.9
    for name in ("country", "session source", "engagement per session"):
        assert result[name].matched < result[name].compared
    assert result["session source"].matched == 0
    assert result["user properties"].matched == result["user properties"].compared


def test_engagement_tolerates_one_millisecond_per_forwarded_event() -> None:
    """A session matches within 1 ms per forwarded event of the true sum, not beyond."""

    def truth_record(event_id: str, msec: int) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "valid": True,
            "session_key": "s",
            "engagement_time_msec": msec,
        }

    truth = {"a": truth_record("a", 0), "b": truth_record("b", 300)}

    def lines(first: int, second: int) -> list[dict[str, Any]]:
        return [
            sent_line(e, body(events=[{"name": "x", "params": {"engagement_time_msec": m}}]))
            for e, m in (("a", first), ("b", second))
        ]

    assert parity(truth, lines(1, 301)).by_name()["engagement per session"].matched == 1
    assert parity(truth, lines(1, 302)).by_name()["engagement per session"].matched == 0


def test_old_truth_records_are_not_compared_on_new_dimensions() -> None:
    """A truth file without the report fields gives n/a rather than false misses."""
    truth = {"a": {"event_id": "a", "valid": True, "session_key": "s"}}
    result = parity(truth, [sent_line("a", body())])
    assert all(row.compared == 0 for row in result.dimensions)
    assert "n/a" in format_parity(result)


def test_score_command_prints_the_parity_table(tmp_path, stream: Simulation, capsys) -> None:
    """``ga4-stitch score`` ends with one row per dimension; ``--json`` nests ``parity``."""
    small = simulate(replace(SimulationConfig(people=4, seed=2, start_micros=T0)))
    truth_path, sent_path = tmp_path / "truth.ndjson", tmp_path / "sent.ndjson"
    truth_path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in small.truth))
    sent_path.write_text("".join(json.dumps(line) + "\n" for line in ideal_requests(small)))
    assert main(["score", str(sent_path), "--truth", str(truth_path)]) == 0
    out = capsys.readouterr().out
    table = out.split("GA4 report parity\n")[1].splitlines()
    assert [row.split("  ")[0].strip() for row in table[1:]] == list(DIMENSIONS)
    assert main(["score", str(sent_path), "--truth", str(truth_path), "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["parity"]["country"]["share"] == 1.0


def test_parity_dimensions_are_listed_once_in_order() -> None:
    """The table's rows are the documented dimensions, each once."""
    assert len(set(DIMENSIONS)) == len(DIMENSIONS) == 12
    assert list(itertools.islice(DIMENSIONS, 0, 3)) == [
        "device category",
        "browser",
        "operating system",
    ]


def test_on_time_source_leaves_out_sessions_whose_landing_came_late() -> None:
    """A late landing's session is counted in the source row, not in the on-time row."""
    on_time = {"valid": True, "session_id_reachable": True, "session_key": "a"}
    late = {"valid": True, "session_id_reachable": False, "session_key": "b"}
    truth = {
        "e1": {**on_time, "event_id": "e1", "session_source": {"source": "news"}},
        "e2": {**late, "event_id": "e2", "session_source": {"source": "news"}},
    }
    with_source = body(events=[campaign("news", T0), {"name": "page_view"}])
    sent = [
        {"event_id": "e1", "request": with_source},
        {"event_id": "e2", "request": {**body(), "client_id": "9.9"}},
    ]
    rows = parity(truth, sent).by_name()
    assert (rows["session source"].matched, rows["session source"].compared) == (1, 2)
    on_time_row = rows["source, landing on time"]
    assert (on_time_row.matched, on_time_row.compared) == (1, 1)
