"""Replay a file of raw events through a running local pipeline and record what GA4 got.

``replay(pipeline, events, out_path)`` publishes every raw event to the raw-events topic
as the GTM SC tag would (attributes ``client_id`` and ``event_name``, an ordering key per
client), then watches the local GA4 endpoint's record, the two
dead-letter subscriptions and the functions' logs until every distinct event id is
accounted for: it reached GA4 (``/mp/collect``, or the Data Manager API's
``/v1/events:ingest``, answered 2xx; the forwarder names the event in the
``X-Ga4-Stitch-Event-Id`` header), it was dead-lettered, or the resolver dropped it
(``BOT_MODE=drop``). ``timeout`` bounds the wait without progress, not the whole replay.

Outputs: ``out_path``, one SENT line per GA4 request that carried one of the events
(``{event_id, client_id, user_id, session_id, session_number, request}``, in order of
receipt: an event sent twice shows twice), and ``out_path.deadletter``, one line per
dead-lettered event (``{event_id, line, reason, detail, source}``). An event id is the raw
event's ``event_id`` or, without one, the Pub/Sub message id (as the resolver decides).
``out_path.export/`` holds what the BigQuery export would: every message the pipeline's
stand-ins for its subscriptions (pull subscriptions on the enriched-events and
identity-links topics) received during the replay, drained while it watches and written to
``enriched_events.ndjson`` and ``identity_links.ndjson`` in the rows ``ga4-stitch warehouse
--export`` reads (``ga4_stitch.warehouse.ExportRow``); each batch is acknowledged once
written. What those subscriptions held before the replay published anything (an attached
pipeline's earlier traffic) is acknowledged and left out.
Input lines that are not a JSON object are not published: they are counted and reported
with their line numbers, and the rest still run.

Ordering keys: ``canonical`` (default) keys each message by the client the resolver files
it under: the cookie prefix stripped, as the GTM SC tag does, and a client that landed
with ``_gl`` following the client it carried. A burst replay compresses hours into
seconds, so a checkout domain's events before and after a hop would otherwise race each
other in a way the seconds between them in real traffic never allow. ``received`` keys by
the ``client_id`` exactly as sent, like publishers other than ours, to show that race.

A replay outlives trouble in its pipeline: a function that exits is restarted by the
pipeline, and the replay keeps waiting. When the pipeline itself is lost (the ``run``
process it attached to is gone, or an emulator of its own pipeline died) it stops
waiting, records why in ``pipeline_lost`` and still writes both outputs with what it saw,
so the caller can print one error and the partial summary.

Latency is the GA4 receipt time minus the time the event was handed to the publisher, so a
burst replay measures queueing too; ``rate`` paces publishing to measure the pipeline at a
given load.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ga4_stitch.emulators import clear_firestore
from ga4_stitch.ga4_endpoint import is_accepted
from ga4_stitch.parity import is_campaign_event
from ga4_stitch.pipeline import (
    EXPORT_ROLES,
    LocalPipeline,
    PipelineError,
    PipelineInfo,
    client_environment,
    process_alive,
)

MAX_ATTRIBUTE_BYTES = 1024
ORDERING_KEYS = ("received", "canonical")
RESOLVE_FINAL = frozenset({"resolved", "duplicate_skipped", "dead_lettered", "bot_dropped"})
FORWARD_FINAL = frozenset(
    {"forwarded", "duplicate_suppressed", "dead_lettered", "ga4_outcome_unknown"}
)
PUBLISHES_ENRICHED = frozenset({"resolved", "duplicate_skipped"})
LOGGED_SENDS = frozenset({"forwarded", "ga4_outcome_unknown", "ga4_outcome_unknown_resent"})
"""Forwarder log events that each stand for one request GA4 may have taken."""


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class InputEvent:
    line: int
    data: bytes
    """Exactly what is published: the line as read (or the object, serialised)."""
    payload: Mapping[str, Any]
    event_id: str | None
    """The raw ``event_id`` as the resolver reads it; None: the message id will be used."""
    ordering_key: str
    attributes: Mapping[str, str]


class CanonicalKeys:
    """The ordering key of the ``canonical`` mode: the resolver's client for an event, as
    far as the event itself shows it (cookie prefix, ``_gl`` hops; link tokens are signed
    and opaque here)."""

    def __init__(self) -> None:
        self._followed: dict[str, str] = {}

    def key(self, payload: Mapping[str, Any], received: str) -> str:
        from shared.domain.crossdomain.linker import (
            CLIENT_ID_KEY,
            extract_linker_param,
            normalize_linker_client_id,
            parse_linker_param,
        )
        from shared.domain.events import normalize_client_id
        from shared.errors import InvalidEvent

        try:
            client = normalize_client_id(payload.get("client_id"))
        except InvalidEvent:
            return received
        location = payload.get("page_location")
        value = extract_linker_param(location if isinstance(location, str) else None)
        parsed = parse_linker_param(value) if value else None
        carried = parsed.values.get(CLIENT_ID_KEY) if parsed else None
        linked = normalize_linker_client_id(carried) if carried else None
        if linked and linked != client:
            self._followed.setdefault(client, self._followed.get(linked, linked))
        return self._followed.get(client, client)


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


@dataclass(frozen=True)
class ParsedInput:
    events: list[InputEvent]
    bad: list[BadLine]
    lines: int


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _attribute(value: Any) -> str | None:
    text = value if isinstance(value, str) and value else None
    return text if text is not None and len(text.encode()) <= MAX_ATTRIBUTE_BYTES else None


def input_event(
    line: int, data: bytes, payload: Mapping[str, Any], canonical: CanonicalKeys | None = None
) -> InputEvent:
    """One raw event as the GTM SC tag publishes it (keyed by ``canonical`` when given)."""
    event_id = _text(payload.get("event_id"))
    client_id = payload.get("client_id")
    key = client_id if isinstance(client_id, str) else _text(client_id) or ""
    if canonical is not None:
        key = canonical.key(payload, key)
    if len(key.encode()) > MAX_ATTRIBUTE_BYTES:
        key = ""
    attributes = {
        name: text
        for name in ("client_id", "event_name")
        if (text := _attribute(payload.get(name))) is not None
    }
    return InputEvent(line, data, payload, event_id[:500] if event_id else None, key, attributes)


def parse_lines(
    lines: Iterable[str | bytes | Mapping[str, Any]], ordering_key: str = "canonical"
) -> ParsedInput:
    """Raw events with their 1-based line numbers; blank lines are skipped, lines that are
    not a JSON object are reported as ``BadLine``. ``ordering_key``: ``received`` or
    ``canonical`` (see the module docstring)."""
    if ordering_key not in ORDERING_KEYS:
        raise ValueError(f"ordering_key must be one of {ORDERING_KEYS}, got {ordering_key!r}")
    canonical = CanonicalKeys() if ordering_key == "canonical" else None
    events: list[InputEvent] = []
    bad: list[BadLine] = []
    number = 0
    for number, item in enumerate(lines, start=1):
        if isinstance(item, Mapping):
            data = json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
            events.append(input_event(number, data, item, canonical))
            continue
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            bad.append(BadLine(number, f"not JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(value, dict):
            bad.append(BadLine(number, f"a JSON {type(value).__name__}, not an object"))
            continue
        events.append(input_event(number, text.strip().encode(), value, canonical))
    return ParsedInput(events, bad, number)


# --------------------------------------------------------------------------- outputs


def sent_line(event_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The SENT line of one GA4 request body; session fields come from its first event
    that is not ``campaign_details`` (attribution, which carries no session)."""
    events = body.get("events") if isinstance(body, Mapping) else None
    events = [e for e in events if not is_campaign_event(e)] if isinstance(events, list) else []
    first = events[0] if events else {}
    params = first.get("params", {}) if isinstance(first, Mapping) else {}
    params = params if isinstance(params, Mapping) else {}
    return {
        "event_id": event_id,
        "client_id": body.get("client_id"),
        "user_id": body.get("user_id"),
        "session_id": params.get("session_id"),
        "session_number": params.get("session_number"),
        "request": body,
    }


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` 0.95 for p95); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def dead_letter_event_id(
    body: Any, attributes: Mapping[str, str], by_message: Mapping[str, str]
) -> str | None:
    """The event a dead letter is about: the resolver's by the raw message id, the
    forwarder's by the enriched message's ``event_id`` attribute, Pub/Sub's own (the
    original message unchanged) by its payload."""
    if isinstance(body, Mapping) and "reason" in body and "payload" in body:
        message_id = str(body.get("message_id") or "")
        if body.get("source") == "resolve" and message_id in by_message:
            return by_message[message_id]
        original = body.get("attributes") or {}
        if isinstance(original, Mapping) and original.get("event_id"):
            return str(original["event_id"])
        with contextlib.suppress(ValueError, TypeError):
            body = json.loads(str(body["payload"]))
    if isinstance(body, Mapping):
        resolved = body.get("resolved")
        if isinstance(resolved, Mapping) and resolved.get("event_id"):
            return str(resolved["event_id"])
        return _text(body.get("event_id"))
    return attributes.get("event_id")


# --------------------------------------------------------------------------- summary


def duplicate_counts(
    deliveries: Mapping[str, int], requests: Mapping[str, int], logged: Mapping[str, int]
) -> tuple[int, int]:
    """(duplicates suppressed, duplicates sent after a crashed delivery) from the deliveries
    published per event, the GA4 requests per sent event and the sends the forwarder
    logged per event (``forwarded`` or ``ga4_outcome_unknown``).

    Suppressed counts, per sent event, the deliveries that did not become a request; an
    event GA4 got more often than it was published (sent again after a crashed delivery)
    suppressed none, never a negative number. The second figure is the duplicate requests
    no log line accounts for: a delivery that sent and then died before it could log (or
    record) the send, its redelivery sending again: the crash window, counted apart and
    whatever the ledger protocol."""
    suppressed = sum(max(0, deliveries.get(event, 0) - count) for event, count in requests.items())
    after_crash = sum(
        min(count - 1, max(0, count - logged.get(event, 0))) for event, count in requests.items()
    )
    return suppressed, after_crash


@dataclass
class ReplaySummary:
    lines: int = 0
    malformed_lines: list[tuple[int, str]] = field(default_factory=list)
    events_in: int = 0
    """Messages published (input lines that were JSON objects)."""
    publish_failed: int = 0
    distinct_events: int = 0
    sent: int = 0
    """Distinct events that reached GA4."""
    ga4_requests: int = 0
    duplicates_sent: int = 0
    """GA4 requests beyond the first of their event."""
    ga4_requests_with_validation_messages: int = 0
    dead_lettered: int = 0
    dead_lettered_by_reason: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    missing: int = 0
    missing_ids: list[str] = field(default_factory=list)
    duplicate_deliveries: int = 0
    """Messages repeating an event id already published."""
    duplicates_suppressed: int = 0
    """Repeated deliveries of sent events that did not reach GA4 again (per event, its
    deliveries beyond the requests GA4 got for it; never below 0)."""
    duplicates_after_crash: int = 0
    """Duplicates sent again after a crashed delivery: the crash fell after GA4 took the
    request and before the ledger recorded it (the window ``docs/forwarding.md``
    describes), so no log line accounts for the first request. Part of
    ``duplicates_sent``."""
    pipeline_lost: str | None = None
    """Why the replay stopped watching before every event was accounted for: its pipeline
    went away. The summary is partial."""
    sessions: int = 0
    users: int = 0
    users_stitched: int = 0
    """Users given to events that carried no user id of their own."""
    events_stitched: int = 0
    publish_seconds: float = 0.0
    seconds: float = 0.0
    throughput_per_second: float | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    settled: bool = True
    """Every published message was seen handled in the functions' logs."""
    out_path: str = ""
    dead_letter_path: str = ""
    export_path: str = ""
    """The export directory (``out_path.export``)."""
    exported: dict[str, int] = field(default_factory=dict)
    """Rows written per export table."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        rows = [
            ("lines read", self.lines),
            ("malformed lines", len(self.malformed_lines)),
            ("events in (published)", self.events_in),
            ("distinct events", self.distinct_events),
            ("sent to GA4", self.sent),
            ("GA4 requests", self.ga4_requests),
            ("duplicates sent", self.duplicates_sent),
            ("  after a crashed delivery", self.duplicates_after_crash),
            ("requests with validation messages", self.ga4_requests_with_validation_messages),
            ("dead-lettered", self.dead_lettered),
            *((f"  {reason}", count) for reason, count in self.dead_lettered_by_reason.items()),
            ("dropped by the resolver", self.dropped),
            ("missing", self.missing),
            ("duplicate deliveries in", self.duplicate_deliveries),
            ("duplicates suppressed", self.duplicates_suppressed),
            ("sessions", self.sessions),
            ("users", self.users),
            ("users stitched", self.users_stitched),
            ("events stitched", self.events_stitched),
            ("publish time", f"{self.publish_seconds:.1f} s"),
            ("wall time", f"{self.seconds:.1f} s"),
            ("throughput", _number(self.throughput_per_second, " events/s")),
            *(
                (f"latency {name}", _number(value, " ms"))
                for name, value in self.latency_ms.items()
            ),
        ]
        if self.publish_failed:
            rows.insert(3, ("publish failed", self.publish_failed))
        if not self.settled:
            rows.append(("every delivery handled", "not seen in the function logs"))
        if self.pipeline_lost:
            rows.insert(0, ("PARTIAL: pipeline lost", self.pipeline_lost))
        return "\n".join(f"{name:<36} {value}" for name, value in rows)


def _number(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:,.1f}{unit}"


# --------------------------------------------------------------------------- tracking


@dataclass
class _Event:
    line: int
    published_micros: int
    raw_user: bool
    deliveries: int = 1


class _Tail:
    """New complete lines of a growing file, from where it stood when the tail began."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = path.stat().st_size if path.exists() else 0
        self._partial = b""

    def lines(self) -> list[str]:
        try:
            with self._path.open("rb") as file:
                file.seek(self._offset)
                chunk = file.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete if line.strip()]


def _json_lines(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    for line in lines:
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                yield value


def _pull(subscriber: Any, subscription: str) -> list[Any]:
    """What a pull subscription holds now (at most 500 messages)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": 500, "return_immediately": True},
            timeout=10,
        )
    return list(response.received_messages)


def _publish_micros(moment: Any) -> int:
    """A pulled message's publish time (a ``datetime`` from proto-plus) as Unix micros."""
    if not isinstance(moment, datetime):
        return time.time_ns() // 1000
    when: datetime = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(when.timestamp()) * 1_000_000 + when.microsecond


class _Export:
    """The BigQuery export's stand-ins drained into ``directory``: one NDJSON file per
    export table, in the rows ``ga4-stitch warehouse --export`` reads. A batch is
    acknowledged once it is written (a failed acknowledgement means a redelivery, a
    duplicate row, as the export keeps redeliveries too)."""

    def __init__(self, info: PipelineInfo, subscriber: Any, directory: Path) -> None:
        self.subscriber = subscriber
        self.directory = directory
        self.subscriptions = {
            role: f"projects/{info.project}/subscriptions/{info.subscriptions[role]}"
            for role in EXPORT_ROLES
            if role in info.subscriptions
        }
        """Role (= export table) -> subscription path; a pipeline started by an older
        version may lack one."""
        self.rows = dict.fromkeys(EXPORT_ROLES, 0)
        self.refused = 0
        """Messages whose data is not JSON: BigQuery refuses them (its dead-letter topic)."""
        directory.mkdir(parents=True, exist_ok=True)
        for role in EXPORT_ROLES:
            self.path(role).write_text("", encoding="utf-8")

    def path(self, role: str) -> Path:
        return self.directory / f"{role}.ndjson"

    def drain(self, rounds: int, *, keep: bool = True) -> int:
        """Pull each subscription until it is empty (at most ``rounds`` pulls each), write
        the rows (unless not ``keep``) and acknowledge them; the messages pulled."""
        pulled = 0
        for role, subscription in self.subscriptions.items():
            for _ in range(rounds):
                items = _pull(self.subscriber, subscription)
                if not items:
                    break
                if keep:
                    self._write(role, items)
                self.subscriber.acknowledge(
                    request={"subscription": subscription, "ack_ids": [i.ack_id for i in items]}
                )
                pulled += len(items)
        return pulled

    def _write(self, role: str, items: Sequence[Any]) -> None:
        from ga4_stitch.warehouse import SUBSCRIPTIONS, ExportRow

        lines = []
        for item in items:
            message = item.message
            data = bytes(message.data).decode("utf-8", "replace")
            try:
                json.loads(data)
            except ValueError:
                self.refused += 1
                continue
            row = ExportRow(
                subscription_name=SUBSCRIPTIONS[role],
                message_id=str(message.message_id),
                publish_time_micros=_publish_micros(message.publish_time),
                data=data,
                attributes=dict(message.attributes),
            )
            lines.append(json.dumps(row.to_json(), separators=(",", ":"), ensure_ascii=False))
        if lines:
            with self.path(role).open("a", encoding="utf-8") as file:
                file.write("".join(line + "\n" for line in lines))
            self.rows[role] += len(lines)


class _Watch:
    """What the pipeline has done with the replayed events so far."""

    def __init__(self, info: PipelineInfo, subscriber: Any, export: _Export | None = None) -> None:
        self.info = info
        self.subscriber = subscriber
        self.export = export
        self.ga4 = _Tail(Path(info.ga4_record))
        self.logs = {name: _Tail(Path(path)) for name, path in info.logs.items()}
        self.events: dict[str, _Event] = {}
        self.by_message: dict[str, str] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.with_messages = 0
        self.first_receipt: dict[str, int] = {}
        self.dead: dict[str, dict[str, Any]] = {}
        self.dropped: dict[str, str] = {}
        self.outcomes: dict[str, Counter[str]] = {name: Counter() for name in info.logs}
        self.logged_sends: Counter[str] = Counter()
        """Requests the forwarder logged per event (``forwarded``, ``ga4_outcome_unknown``)."""
        self.last_progress = time.monotonic()
        self.last_accounted_micros = 0

    def accounted(self) -> set[str]:
        done = self.first_receipt.keys() | self.dead.keys() | self.dropped.keys()
        return done & self.events.keys()

    def poll(self) -> None:
        before = len(self.accounted())
        self._read_ga4()
        self._pull_dead_letters()
        self._read_logs()
        if self.export is not None:
            self.export.drain(rounds=5)
        if len(self.accounted()) > before:
            self.last_progress = time.monotonic()
            self.last_accounted_micros = time.time_ns() // 1000

    def _read_ga4(self) -> None:
        for record in _json_lines(self.ga4.lines()):
            event_id = record.get("event_id")
            accepted = is_accepted(record)
            if not accepted or not isinstance(event_id, str) or event_id not in self.events:
                continue
            body = record.get("body")
            self.with_messages += bool(record.get("validation_messages"))
            self.requests.append((event_id, body if isinstance(body, dict) else {}))
            self.first_receipt.setdefault(event_id, int(record["received_at_micros"]))

    def _pull_dead_letters(self) -> None:
        for role in ("resolve_dead_letter", "forward_dead_letter"):
            path = f"projects/{self.info.project}/subscriptions/{self.info.subscriptions[role]}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                response = self.subscriber.pull(
                    request={"subscription": path, "max_messages": 500, "return_immediately": True},
                    timeout=10,
                )
            if not response.received_messages:
                continue
            for item in response.received_messages:
                self._dead_letter(item.message.data, dict(item.message.attributes))
            self.subscriber.acknowledge(
                request={
                    "subscription": path,
                    "ack_ids": [item.ack_id for item in response.received_messages],
                }
            )

    def _dead_letter(self, data: bytes, attributes: dict[str, str]) -> None:
        try:
            body: Any = json.loads(data)
        except ValueError:
            body = None
        event_id = dead_letter_event_id(body, attributes, self.by_message)
        if event_id is None or event_id not in self.events or event_id in self.dead:
            return
        own = isinstance(body, Mapping) and "reason" in body and "payload" in body
        self.dead[event_id] = {
            "event_id": event_id,
            "line": self.events[event_id].line,
            "reason": str(body["reason"]) if own else "max_delivery_attempts",
            "detail": body.get("detail") if own else None,
            "source": body.get("source")
            if own
            else attributes.get("CloudPubSubDeadLetterSourceSubscription"),
        }

    def _read_logs(self) -> None:
        for name, tail in self.logs.items():
            for entry in _json_lines(tail.lines()):
                outcome = str(entry.get("event", ""))
                self.outcomes[name][outcome] += 1
                event_id = entry.get("event_id")
                if outcome == "bot_dropped" and isinstance(event_id, str):
                    self.dropped.setdefault(event_id, outcome)
                if name == "forward" and outcome in LOGGED_SENDS and isinstance(event_id, str):
                    self.logged_sends[event_id] += 1

    def settled(self, published: int) -> bool:
        """Every published message handled by the resolver, and every enriched message it
        published handled by the forwarder (redeliveries of duplicates included)."""
        resolve, forward = self.outcomes["resolve"], self.outcomes["forward"]
        enriched = sum(resolve[name] for name in PUBLISHES_ENRICHED)
        handled_forward = sum(forward[name] for name in FORWARD_FINAL)
        return sum(resolve[n] for n in RESOLVE_FINAL) >= published and handled_forward >= enriched


# --------------------------------------------------------------------------- replay


def _pipeline_info(pipeline: LocalPipeline | PipelineInfo) -> PipelineInfo:
    return pipeline.info if isinstance(pipeline, LocalPipeline) else pipeline


def pipeline_lost(pipeline: LocalPipeline | PipelineInfo) -> str | None:
    """Why the pipeline can no longer finish the replay, or None while it can: an emulator
    of an own pipeline died (functions are restarted, so they never count), or the
    ``run`` process an attached replay relies on is gone."""
    if isinstance(pipeline, LocalPipeline):
        dead = pipeline.dead_processes()
        return f"{', '.join(dead)} exited" if dead else None
    if not process_alive(pipeline.pid):
        return f"the pipeline's process {pipeline.pid} (ga4-stitch run) is gone"
    return None


def _read_source(
    events: Path | Iterable[str | bytes | Mapping[str, Any]], ordering_key: str
) -> ParsedInput:
    if isinstance(events, Path):
        with events.open("rb") as file:
            return parse_lines(file, ordering_key)
    return parse_lines(events, ordering_key)


def replay(
    pipeline: LocalPipeline | PipelineInfo,
    events: Path | Iterable[str | bytes | Mapping[str, Any]],
    out_path: Path,
    *,
    timeout: float = 60.0,
    rate: float | None = None,
    clear_state: bool = False,
    ordering_key: str = "canonical",
    settle_seconds: float = 15.0,
    report: Callable[[str], None] | None = None,
) -> ReplaySummary:
    """Publish ``events`` (a file or its lines/objects) through ``pipeline`` and wait; see
    the module docstring. ``clear_state`` empties Firestore first (a pipeline that already
    saw these events would otherwise suppress them all as duplicates)."""
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
    from google.cloud.pubsub_v1.types import BatchSettings, PublisherOptions

    say = report or (lambda _: None)
    info = _pipeline_info(pipeline)
    if not info.ga4_record:
        raise PipelineError(
            f"the pipeline forwards to {info.ga4_url}, not to the local GA4 endpoint, so "
            "replay cannot see what reached GA4"
        )
    lost = functools.partial(pipeline_lost, pipeline)
    parsed = _read_source(events, ordering_key)
    for bad in parsed.bad:
        say(f"line {bad.line}: {bad.reason}; skipped")
    if clear_state:
        clear_firestore(info.firestore_host, info.project)
    with client_environment(info.project, info.pubsub_host, info.firestore_host):
        publisher = PublisherClient(
            publisher_options=PublisherOptions(enable_message_ordering=True),
            batch_settings=BatchSettings(max_latency=0.01),
        )
        subscriber = SubscriberClient()
    export = _Export(info, subscriber, out_path.with_name(out_path.name + ".export"))
    for role in EXPORT_ROLES:
        if role not in export.subscriptions:
            say(f"the pipeline has no {role} export subscription; {export.path(role)} stays empty")
    watch = _Watch(info, subscriber, export)
    summary = ReplaySummary(
        lines=parsed.lines, malformed_lines=[(b.line, b.reason) for b in parsed.bad]
    )
    try:
        earlier = export.drain(rounds=1000, keep=False)
    except Exception as exc:  # noqa: BLE001 - publishing finds out whether the pipeline is gone
        say(f"could not empty the export subscriptions first: {exc}")
    else:
        if earlier:
            say(f"left out {earlier} export messages published before this replay")
    started = time.monotonic()
    start_micros = time.time_ns() // 1000
    try:
        _publish(
            publisher,
            info,
            parsed.events,
            watch=watch,
            summary=summary,
            rate=rate,
            say=say,
            lost=lost,
        )
        summary.publish_seconds = time.monotonic() - started
        if summary.pipeline_lost is None:
            _wait(watch, summary, timeout, settle_seconds, say, lost=lost)
        _drain_export(export, summary, say)
    finally:
        publisher.stop()
        with contextlib.suppress(Exception):
            subscriber.close()
    summary.seconds = time.monotonic() - started
    _finish(watch, summary, start_micros, out_path)
    return summary


def _publish(
    publisher: Any,
    info: PipelineInfo,
    events: Sequence[InputEvent],
    *,
    watch: _Watch,
    summary: ReplaySummary,
    rate: float | None,
    say: Callable[[str], None],
    lost: Callable[[], str | None],
) -> None:
    topic = publisher.topic_path(info.project, info.topics["raw_events"])
    pending = []
    began = time.monotonic()
    step = max(1, len(events) // 10)
    for index, event in enumerate(events, start=1):
        if rate:
            delay = began + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        published = time.time_ns() // 1000
        future = publisher.publish(
            topic, event.data, ordering_key=event.ordering_key, **event.attributes
        )
        pending.append((event, published, future))
        if index % step == 0 or index == len(events):
            say(f"published {index}/{len(events)}")
    failed_keys = set()
    for event, published, future in pending:
        if summary.pipeline_lost and not future.done():
            summary.publish_failed += 1
            continue
        try:
            message_id = str(future.result(timeout=60))
        except Exception as exc:  # noqa: BLE001 - every publish failure is counted, none fatal
            summary.pipeline_lost = summary.pipeline_lost or lost()
            summary.publish_failed += 1
            failed_keys.add(event.ordering_key)
            say(f"line {event.line}: publish failed: {exc}")
            continue
        summary.events_in += 1
        event_id = event.event_id or message_id
        watch.by_message[message_id] = event_id
        tracked = watch.events.get(event_id)
        if tracked is None:
            raw_user = _text(event.payload.get("user_id")) is not None
            watch.events[event_id] = _Event(event.line, published, raw_user)
        else:
            tracked.deliveries += 1
    for key in failed_keys - {""}:
        publisher.resume_publish(topic, key)


def _wait(
    watch: _Watch,
    summary: ReplaySummary,
    timeout: float,
    settle_seconds: float,
    say: Callable[[str], None],
    *,
    lost: Callable[[], str | None],
) -> None:
    total = len(watch.events)
    last_report = time.monotonic()
    while True:
        if not _poll(watch, summary, say, lost):
            return
        done = len(watch.accounted())
        now = time.monotonic()
        if done >= total:
            break
        if now - watch.last_progress > timeout:
            say(f"gave up: nothing new reached GA4 or a dead-letter topic for {timeout:g} s")
            summary.settled = watch.settled(summary.events_in)
            return
        if now - last_report >= 2.0:
            last_report = now
            say(
                f"waiting: {done}/{total} accounted for "
                f"(sent {len(watch.first_receipt)}, dead-lettered {len(watch.dead)})"
            )
        time.sleep(0.1)
    deadline = time.monotonic() + settle_seconds
    while not watch.settled(summary.events_in) and time.monotonic() < deadline:
        time.sleep(0.1)
        if not _poll(watch, summary, say, lost):
            return
    summary.settled = watch.settled(summary.events_in)


def _poll(
    watch: _Watch,
    summary: ReplaySummary,
    say: Callable[[str], None],
    lost: Callable[[], str | None],
) -> bool:
    """One look at the pipeline; False once it is lost (``summary.pipeline_lost`` says
    why). A failed look at a pipeline still there (an emulator restarting, frozen) is
    retried on the next round: the no-progress timeout bounds it."""
    try:
        watch.poll()
    except Exception as exc:  # noqa: BLE001 - whatever the client raises, ask why first
        reason = lost()
        if reason is None:
            say(f"could not read the pipeline's progress, trying again: {exc}")
            time.sleep(1.0)
            return True
        summary.pipeline_lost = reason
    else:
        summary.pipeline_lost = lost()
    if summary.pipeline_lost:
        say(f"stopped waiting: {summary.pipeline_lost}")
        summary.settled = False
        return False
    return True


def _drain_export(export: _Export, summary: ReplaySummary, say: Callable[[str], None]) -> None:
    """The rest of the export once the replay is over; a lost pipeline's export is what
    was drained until then."""
    if summary.pipeline_lost is None:
        try:
            export.drain(rounds=1000)
        except Exception as exc:  # noqa: BLE001 - the export stays partial, the replay is reported
            say(f"could not drain the export subscriptions: {exc}")
    if export.refused:
        say(f"{export.refused} export messages whose data is not JSON left out")
    summary.export_path = str(export.directory)
    summary.exported = dict(export.rows)


def _finish(watch: _Watch, summary: ReplaySummary, start_micros: int, out_path: Path) -> None:
    events = watch.events
    summary.distinct_events = len(events)
    summary.sent = len(watch.first_receipt)
    summary.ga4_requests = len(watch.requests)
    summary.duplicates_sent = summary.ga4_requests - summary.sent
    summary.ga4_requests_with_validation_messages = watch.with_messages
    summary.dead_lettered = len(watch.dead)
    summary.dead_lettered_by_reason = dict(
        sorted(Counter(entry["reason"] for entry in watch.dead.values()).items())
    )
    summary.dropped = len(watch.dropped)
    missing = sorted(events.keys() - watch.accounted(), key=lambda e: events[e].line)
    summary.missing, summary.missing_ids = len(missing), missing[:20]
    summary.duplicate_deliveries = sum(event.deliveries - 1 for event in events.values())
    requests_per_event = Counter(event_id for event_id, _ in watch.requests)
    summary.duplicates_suppressed, summary.duplicates_after_crash = duplicate_counts(
        {event_id: event.deliveries for event_id, event in events.items()},
        requests_per_event,
        watch.logged_sends,
    )
    lines = [sent_line(event_id, body) for event_id, body in watch.requests]
    summary.sessions = len(
        {
            (line["client_id"], line["session_id"])
            for line in lines
            if line["session_id"] is not None
        }
    )
    summary.users = len({line["user_id"] for line in lines if line["user_id"]})
    stitched = [line for line in lines if line["user_id"] and not events[line["event_id"]].raw_user]
    summary.events_stitched = len({line["event_id"] for line in stitched})
    summary.users_stitched = len({line["user_id"] for line in stitched})
    latencies = [
        (received - events[event_id].published_micros) / 1000
        for event_id, received in watch.first_receipt.items()
    ]
    summary.latency_ms = {
        name: percentile(latencies, share)
        for name, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
    }
    elapsed = (watch.last_accounted_micros - start_micros) / 1_000_000
    accounted = len(watch.accounted())
    summary.throughput_per_second = accounted / elapsed if accounted and elapsed > 0 else None
    _write(out_path, lines)
    dead_path = out_path.with_name(out_path.name + ".deadletter")
    _write(dead_path, sorted(watch.dead.values(), key=lambda entry: int(entry["line"])))
    summary.out_path, summary.dead_letter_path = str(out_path), str(dead_path)


def _write(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n")
