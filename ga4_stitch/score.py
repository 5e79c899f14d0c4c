"""How close the events that reached GA4 come to a simulation's ground truth.

Inputs: the truth file of ``ga4-stitch simulate --truth`` (one record per distinct
event id) and a SENT file, one line per event that reached GA4::

    {"event_id", "client_id", "user_id", "session_id", "session_number", "request"}

Per-event rates use the first SENT line of each event id and count over valid events
that were sent (lost events are counted on their own). A true session is reproduced when
one produced session, the SENT lines grouped by ``(client_id, session_id)``, holds exactly
its events. ``session_id`` may be a number, a numeric string or any other string (a
baseline's); it is exact only when it equals the true session start in seconds.

A line whose request holds only ``campaign_details`` events carries attribution, not an
event: it is left out here (``ga4_stitch.parity`` reads it for traffic sources).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ga4_stitch.parity import is_campaign_event

TRUTH_KEYS = ("event_id", "valid", "client_id", "user_id", "session_key")
SENT_KEYS = ("event_id",)
Pair = tuple[Mapping[str, Any], Mapping[str, Any]]
"""A SENT line and the truth record of its event."""


class InputFileError(ValueError):
    """An input file is missing, unreadable or not in the expected shape."""


@dataclass(frozen=True)
class Score:
    events_expected: int
    events_invalid: int
    lines_sent: int
    events_sent: int
    events_lost: int
    duplicates_sent: int
    """SENT lines beyond the first of their event id."""
    events_duplicated: int
    """Event ids sent more than once."""
    invalid_sent: int
    unknown_sent: int
    true_sessions: int
    produced_sessions: int
    sessions_exact: int
    session_accuracy: float | None
    session_inflation: float | None
    session_id_exact_rate: float | None
    session_number_exact_rate: float | None
    session_id_exact_ceiling: float | None
    """The best ``session_id_exact_rate`` an online resolver can reach: events whose
    session's first event arrived after another of its events cannot get its start."""
    late_session_id_exact_rate: float | None
    """``session_id`` exact over events delivered after a later event of their client."""
    user_accuracy: float | None
    leaked_after_logout: int
    canonical_client_accuracy: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_ndjson(path: Path, required: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
    """The JSON objects of an NDJSON file; ``InputFileError`` naming the first bad line."""
    needed = tuple(required)
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield _parse_line(path, number, line, needed)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read: {exc}") from exc


def _parse_line(path: Path, number: int, line: str, required: tuple[str, ...]) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}:{number}: not JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise InputFileError(f"{path}:{number}: not a JSON object")
    missing = [key for key in required if key not in value]
    if missing:
        raise InputFileError(f"{path}:{number}: missing {', '.join(missing)}")
    return value


def load_truth(path: Path) -> dict[str, dict[str, Any]]:
    """Truth records by event id."""
    return {str(record["event_id"]): record for record in read_ndjson(path, TRUTH_KEYS)}


def load_sent(path: Path) -> list[dict[str, Any]]:
    return list(read_ndjson(path, SENT_KEYS))


def score(truth: Mapping[str, Mapping[str, Any]], sent: Iterable[Mapping[str, Any]]) -> Score:
    """Compare SENT lines with the truth records (see the module docstring)."""
    lines = [line for line in sent if not attribution_only(line)]
    counts = Counter(str(line["event_id"]) for line in lines)
    first: dict[str, Mapping[str, Any]] = {}
    for line in lines:
        first.setdefault(str(line["event_id"]), line)
    valid = {event_id: record for event_id, record in truth.items() if record.get("valid")}
    matched: list[Pair] = [
        (first[event_id], valid[event_id]) for event_id in valid if event_id in first
    ]
    late: list[Pair] = [(line, record) for line, record in matched if record.get("late")]
    true_count, produced_count, exact = _sessions(valid, lines)
    return Score(
        events_expected=len(valid),
        events_invalid=len(truth) - len(valid),
        lines_sent=len(lines),
        events_sent=len(first),
        events_lost=len(valid) - len(matched),
        duplicates_sent=len(lines) - len(first),
        events_duplicated=sum(count > 1 for count in counts.values()),
        invalid_sent=sum(event_id in truth and event_id not in valid for event_id in first),
        unknown_sent=sum(event_id not in truth for event_id in first),
        true_sessions=true_count,
        produced_sessions=produced_count,
        sessions_exact=exact,
        session_accuracy=_rate(exact, true_count),
        session_inflation=_rate(produced_count, true_count),
        session_id_exact_rate=_share(matched, _session_id_exact),
        session_number_exact_rate=_share(matched, _session_number_exact),
        session_id_exact_ceiling=_share(
            matched, lambda _, record: bool(record.get("session_id_reachable", True))
        ),
        late_session_id_exact_rate=_share(late, _session_id_exact),
        user_accuracy=_share(matched, lambda line, record: _same(line, record, "user_id")),
        leaked_after_logout=sum(_leaked(line, record) for line, record in matched),
        canonical_client_accuracy=_share(
            matched, lambda line, record: _same(line, record, "client_id")
        ),
    )


def attribution_only(line: Mapping[str, Any]) -> bool:
    """The line's request has events and every one is ``campaign_details``."""
    request = line.get("request")
    events = request.get("events") if isinstance(request, Mapping) else None
    return bool(events) and isinstance(events, list) and all(map(is_campaign_event, events))


def _sessions(
    valid: Mapping[str, Mapping[str, Any]], lines: Iterable[Mapping[str, Any]]
) -> tuple[int, int, int]:
    """True sessions, produced sessions, and true sessions reproduced exactly."""
    true_sets: dict[str, set[str]] = defaultdict(set)
    for event_id, record in valid.items():
        true_sets[str(record["session_key"])].add(event_id)
    produced: dict[tuple[str, str], set[str]] = defaultdict(set)
    for line in lines:
        if line.get("session_id") is not None:
            key = (str(line.get("client_id")), str(line["session_id"]))
            produced[key].add(str(line["event_id"]))
    produced_sets = {frozenset(events) for events in produced.values()}
    exact = sum(frozenset(events) in produced_sets for events in true_sets.values())
    return len(true_sets), len(produced), exact


def _share(
    pairs: list[Pair], check: Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
) -> float | None:
    return _rate(sum(check(line, record) for line, record in pairs), len(pairs))


def _same(line: Mapping[str, Any], record: Mapping[str, Any], key: str) -> bool:
    return line.get(key) == record.get(key)


def _leaked(line: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Sent with a user although a logout left the event anonymous."""
    return bool(record.get("after_logout")) and line.get("user_id") is not None


def _session_number_exact(line: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    return _as_int(line.get("session_number")) == record.get("session_number")


def _session_id_exact(line: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    start = record.get("session_start_micros")
    return start is not None and _as_int(line.get("session_id")) == int(start) // 1_000_000


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def format_score(result: Score) -> str:
    """The score as aligned ``name  value`` lines, rates in percent."""
    rows = []
    for name, value in result.to_json().items():
        if value is None:
            text = "n/a"
        elif name == "session_inflation":
            text = f"{value:.3f}"
        elif isinstance(value, float):
            text = f"{100 * value:.2f}%"
        else:
            text = str(value)
        rows.append(f"{name.replace('_', ' '):<30} {text}")
    return "\n".join(rows)
