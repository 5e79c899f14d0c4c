"""What GA4 would report for recorded Measurement Protocol requests, against the truth.

``reported(body)`` reads one MP request body the way GA4 documents it reads one
(https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference):

- device: ``device.category``/``browser``/``operating_system`` when the body has a
  ``device`` object, and then ``user_agent`` is ignored even where ``device`` leaves a field
  out; otherwise the ``user_agent`` parsed with ``shared.domain.device.parse_user_agent``;
  otherwise nothing.
- country: ``user_location.country_id``; without it None, because ``ip_override`` cannot
  be geolocated here (and GA4 ignores it whenever ``user_location`` is present).
- traffic source: an MP event gets none from its own ``page_location`` or
  ``page_referrer``; a ``campaign_details`` event applies to every event of the same
  ``client_id`` whose timestamp is at or after its own, the latest such one winning. Events
  are timed by their own ``timestamp_micros``, else the request's; an event with neither
  counts as received after every stated time. ``campaign_details`` itself is not an event
  any report counts. Touches can arrive in other requests, so ``Attribution`` collects
  them from every request before sources are read.
- user properties ``{name: {value}}`` read as ``{name: value}``; ``consent`` as its two
  signals (``non_personalized_ads: true`` denies personalisation when ``consent`` is silent);
  ``user_data`` present or not; the event's ``engagement_time_msec`` (0 without one) and
  ``session_id``.

``parity(truth, sent)`` compares those reports with ``TruthRecord`` fields of
``ga4_stitch.simulate`` over the first SENT line of each valid event (the line whose
request holds a reportable event). Per event: ``PER_EVENT`` dimensions; per true
session: ``engagement per session``, matched when the summed reported engagement is
within 1 ms per forwarded event of the session's summed true engagement (the forwarder
sends 1 ms on an event that carries none, as GA4 needs a positive value). A value the truth
lacks (None, ``{}``, false) matches only a report that lacks it too. Truth records written
before these fields existed are not compared for them.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from shared.domain.device import parse_user_agent

CAMPAIGN_EVENT: Final = "campaign_details"
TOUCH_FIELDS: Final = ("source", "medium", "campaign")
UNTIMED: Final = sys.maxsize
"""The sort time of an event with no stated timestamp: received after every stated one."""
PER_EVENT: Final[tuple[tuple[str, str], ...]] = (
    ("device category", "device_category"),
    ("browser", "browser"),
    ("operating system", "operating_system"),
    ("country", "country"),
    ("session source", "session_source.source"),
    ("session medium", "session_source.medium"),
    ("session campaign", "session_source.campaign"),
    ("user properties", "user_properties"),
    ("consent", "consent"),
    ("user data", "user_data"),
)
"""(dimension, truth field) compared event by event; ``a.b`` reads ``b`` inside ``a``."""
ENGAGEMENT: Final = "engagement per session"
ON_TIME_SOURCE: Final = "source, landing on time"
"""Session source over sessions whose landing was not delivered late: an online resolver
decides a session's source when the session opens and never changes it (one session, one
source), so a landing delivered after the session's next page cannot be reproduced; this
row is the share the resolver controls, as ``session id exact ceiling`` is for ids."""
DIMENSIONS: Final = (*(name for name, _ in PER_EVENT), ON_TIME_SOURCE, ENGAGEMENT)


# --------------------------------------------------------------------------- one request


@dataclass(frozen=True)
class Touch:
    """One ``campaign_details`` event: the source it states and from when."""

    client_id: str
    timestamp_micros: int
    source: dict[str, str | None]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _events(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    events = body.get("events")
    return (
        [event for event in events if isinstance(event, Mapping)]
        if isinstance(events, list)
        else []
    )


def _event_time(event: Mapping[str, Any], body: Mapping[str, Any]) -> int:
    own = _int(event.get("timestamp_micros"))
    if own is not None:
        return own
    stated = _int(body.get("timestamp_micros"))
    return UNTIMED if stated is None else stated


def _client(body: Mapping[str, Any]) -> str | None:
    client = body.get("client_id")
    return client if isinstance(client, str) and client else None


def is_campaign_event(event: object) -> bool:
    return isinstance(event, Mapping) and event.get("name") == CAMPAIGN_EVENT


def touches(body: object) -> list[Touch]:
    """The ``campaign_details`` events of one request body."""
    request = _mapping(body)
    client = _client(request)
    if client is None:
        return []
    result = []
    for event in _events(request):
        if is_campaign_event(event):
            params = _mapping(event.get("params"))
            source = {name: _text(params.get(name)) for name in TOUCH_FIELDS}
            result.append(Touch(client, _event_time(event, request), source))
    return result


def _text(value: object) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    text = str(value).strip()
    return text or None


class Attribution:
    """``campaign_details`` seen so far, per client, in time order."""

    def __init__(self, bodies: Iterable[object] = ()) -> None:
        self._touches: dict[str, list[Touch]] = defaultdict(list)
        for body in bodies:
            self.add(body)

    def add(self, body: object) -> None:
        for touch in touches(body):
            timeline = self._touches[touch.client_id]
            timeline.append(touch)
            timeline.sort(key=lambda item: item.timestamp_micros)

    def source(self, client_id: str | None, time_micros: int) -> dict[str, str | None] | None:
        """The latest touch of ``client_id`` at or before ``time_micros``; None if none."""
        timeline = self._touches.get(client_id or "", [])
        index = bisect_right([touch.timestamp_micros for touch in timeline], time_micros)
        return dict(timeline[index - 1].source) if index else None


def _device(body: Mapping[str, Any]) -> dict[str, str | None]:
    device = body.get("device")
    if isinstance(device, Mapping) and device:
        return {
            "device_category": _text(device.get("category")),
            "browser": _text(device.get("browser")),
            "operating_system": _text(device.get("operating_system")),
        }
    parsed = parse_user_agent(_text(body.get("user_agent")))
    return {
        "device_category": parsed.category,
        "browser": parsed.browser,
        "operating_system": parsed.operating_system,
    }


def _user_properties(body: Mapping[str, Any]) -> dict[str, Any]:
    properties = {}
    for name, value in _mapping(body.get("user_properties")).items():
        if isinstance(value, Mapping) and value.get("value") is not None:
            properties[str(name)] = value["value"]
    return properties


def _consent(body: Mapping[str, Any]) -> dict[str, str | None]:
    block = _mapping(body.get("consent"))
    consent = {
        name: text.upper() if (text := _text(block.get(name))) else None
        for name in ("ad_user_data", "ad_personalization")
    }
    if consent["ad_personalization"] is None and body.get("non_personalized_ads") is True:
        consent["ad_personalization"] = "DENIED"
    return consent


def reported(body: object, attribution: Attribution | None = None) -> list[dict[str, Any]]:
    """What GA4 would report for each event of one MP request body (module docstring).

    ``attribution`` holds the ``campaign_details`` of every request (see ``Attribution``);
    without it only this body's own are used. Never raises: a body that is not an MP
    request yields no events.
    """
    request = _mapping(body)
    own = attribution if attribution is not None else Attribution([request])
    client = _client(request)
    common = {
        "client_id": client,
        "user_id": _text(request.get("user_id")),
        **_device(request),
        "country": _text(_mapping(request.get("user_location")).get("country_id")),
        "user_properties": _user_properties(request),
        "consent": _consent(request),
        "user_data": bool(_mapping(request.get("user_data"))),
    }
    result = []
    for event in _events(request):
        if is_campaign_event(event):
            continue
        params = _mapping(event.get("params"))
        time_micros = _event_time(event, request)
        engagement = _int(params.get("engagement_time_msec"))
        result.append(
            {
                "event_name": _text(event.get("name")),
                **common,
                "timestamp_micros": None if time_micros == UNTIMED else time_micros,
                "session_id": _int(params.get("session_id")),
                "session_source": own.source(client, time_micros),
                "engagement_time_msec": engagement if engagement and engagement > 0 else 0,
            }
        )
    return result


def report_requests(bodies: Iterable[object]) -> list[dict[str, Any]]:
    """Every reported event of a stream of request bodies, attributed across all of them."""
    requests = list(bodies)
    attribution = Attribution(requests)
    return [event for body in requests for event in reported(body, attribution)]


# --------------------------------------------------------------------------- against the truth


@dataclass(frozen=True)
class DimensionParity:
    dimension: str
    matched: int
    compared: int

    @property
    def share(self) -> float | None:
        return self.matched / self.compared if self.compared else None


@dataclass(frozen=True)
class Parity:
    """Per dimension, how many sent events (or sessions) GA4 would report as the truth."""

    dimensions: tuple[DimensionParity, ...] = field(default_factory=tuple)

    def by_name(self) -> dict[str, DimensionParity]:
        return {row.dimension: row for row in self.dimensions}

    def to_json(self) -> dict[str, Any]:
        return {
            row.dimension: {"matched": row.matched, "compared": row.compared, "share": row.share}
            for row in self.dimensions
        }


def _truth_value(record: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """(present, value) of a truth field; ``a.b`` reads inside ``a``."""
    head, _, tail = path.partition(".")
    if head not in record:
        return False, None
    value = record[head]
    if tail:
        value = _mapping(value).get(tail)
    return True, value


def _report_value(event: Mapping[str, Any], path: str) -> Any:
    head, _, tail = path.partition(".")
    value = event.get(head)
    return _mapping(value).get(tail) if tail else value


def _same(dimension: str, truth: Any, report: Any) -> bool:
    if dimension == "user properties":
        return _as_text(truth) == _as_text(report)
    if dimension == "consent":
        names = ("ad_user_data", "ad_personalization")
        return all(_mapping(truth).get(n) == _mapping(report).get(n) for n in names)
    if dimension == "user data":
        return bool(truth) == bool(report)
    return bool(truth == report)


def _as_text(properties: object) -> dict[str, str]:
    """Reports show every user property value as text: ``5`` and ``"5"`` are one value."""
    return {str(k): str(v) for k, v in _mapping(properties).items() if v is not None}


def first_reported(
    sent: Iterable[Mapping[str, Any]], attribution: Attribution
) -> dict[str, dict[str, Any]]:
    """Per event id, the first reported event of the first SENT line that has one."""
    result: dict[str, dict[str, Any]] = {}
    for line in sent:
        event_id = str(line.get("event_id"))
        if event_id in result:
            continue
        events = reported(line.get("request"), attribution)
        if events:
            result[event_id] = events[0]
    return result


def parity(truth: Mapping[str, Mapping[str, Any]], sent: Iterable[Mapping[str, Any]]) -> Parity:
    """Compare what GA4 would report for the SENT lines with the truth (module docstring)."""
    lines = list(sent)
    attribution = Attribution(line.get("request") for line in lines)
    reports = first_reported(lines, attribution)
    valid = {event_id: record for event_id, record in truth.items() if record.get("valid")}
    pairs = [
        (reports[event_id], record) for event_id, record in valid.items() if event_id in reports
    ]
    rows = [_compared(dimension, path, pairs) for dimension, path in PER_EVENT]
    on_time = [(report, record) for report, record in pairs if record.get("session_id_reachable")]
    rows.append(_compared(ON_TIME_SOURCE, "session_source.source", on_time))
    rows.append(_engagement(valid, reports))
    return Parity(tuple(rows))


def _compared(
    dimension: str, path: str, pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> DimensionParity:
    matched = compared = 0
    for report, record in pairs:
        present, expected = _truth_value(record, path)
        if present:
            compared += 1
            matched += _same(dimension, expected, _report_value(report, path))
    return DimensionParity(dimension, matched, compared)


def _engagement(
    valid: Mapping[str, Mapping[str, Any]], reports: Mapping[str, Mapping[str, Any]]
) -> DimensionParity:
    """Sessions with a sent event whose reported engagement sum is within 1 ms per
    forwarded event of the true sum (every event of the session counts in the truth)."""
    truth_total: dict[str, int] = defaultdict(int)
    reported_total: dict[str, int] = defaultdict(int)
    forwarded: dict[str, int] = defaultdict(int)
    comparable: dict[str, bool] = defaultdict(lambda: True)
    for event_id, record in valid.items():
        key = str(record.get("session_key"))
        comparable[key] &= "engagement_time_msec" in record
        truth_total[key] += _int(record.get("engagement_time_msec")) or 0
        if event_id in reports:
            forwarded[key] += 1
            reported_total[key] += int(reports[event_id]["engagement_time_msec"])
    sessions = [key for key in forwarded if comparable[key]]
    matched = sum(abs(reported_total[k] - truth_total[k]) <= forwarded[k] for k in sessions)
    return DimensionParity(ENGAGEMENT, matched, len(sessions))


def format_parity(result: Parity) -> str:
    """A ``dimension  matched/compared  share`` table."""
    rows = [f"{'dimension':<24} {'matched/compared':>18} {'share':>8}"]
    for row in result.dimensions:
        share = "n/a" if row.share is None else f"{100 * row.share:.2f}%"
        rows.append(f"{row.dimension:<24} {f'{row.matched}/{row.compared}':>18} {share:>8}")
    return "\n".join(rows)
