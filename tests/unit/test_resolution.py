"""The pure core: deduplication, lateness, streams, and the stored document's round trip."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.firestore.codec import decode, encode
from shared.domain.events import Consent, RawEvent
from shared.domain.resolution import Rules, enrich, resolve_event
from shared.domain.sessions import SessionRules
from shared.domain.state import ClientState
from shared.errors import InvalidEvent

MINUTE = 60_000_000
NOW = 1_763_800_000_000_000
RULES = Rules()


def event(
    event_id: str,
    minutes_ago: float,
    user_id: str | None = None,
    stream: str = "G-1",
    name: str = "page_view",
    **extra: object,
) -> RawEvent:
    return RawEvent(
        event_id=event_id,
        client_id="1.2",
        incoming_client_id="GA1.1.1.2",
        event_name=name,
        time_micros=NOW - int(minutes_ago * MINUTE),
        time_source="timestamp_micros",
        user_id=user_id,
        stream_id=stream,
        consent=Consent(),
        **extra,  # type: ignore[arg-type]
    )


def run(events: list[RawEvent], rules: Rules = RULES) -> tuple[ClientState, list]:
    state = None
    results = []
    for item in events:
        resolution = resolve_event(state, item, rules, NOW)
        state = resolution.state
        results.append(resolution)
    assert state is not None
    return state, results


def test_a_redelivered_event_gets_the_identical_answer_and_changes_nothing():
    """The same event_id again: same resolved object, flagged duplicate, state untouched."""
    state, results = run([event("a", 10), event("b", 9, user_id="u1")])
    again = resolve_event(state, event("b", 9, user_id="u1"), RULES, NOW + 5 * MINUTE)
    assert again.duplicate
    assert again.resolved == results[1].resolved
    assert again.state is state
    assert state.events == 2


def test_duplicates_older_than_the_record_are_processed_again():
    """The processed record is bounded: an id pushed out of it is treated as new."""
    rules = replace(RULES, sessions=SessionRules(processed_kept=2))
    state, _ = run([event("a", 10), event("b", 9), event("c", 8)], rules)
    assert [p.event_id for p in state.processed] == ["b", "c"]
    assert not resolve_event(state, event("a", 10), rules, NOW).duplicate


def test_events_beyond_the_allowed_lateness_are_refused_as_too_late():
    """An event older than 72 hours (GA4's backdating limit) is a permanent too_late error."""
    with pytest.raises(InvalidEvent) as caught:
        resolve_event(None, event("old", 72 * 60 + 1), RULES, NOW)
    assert caught.value.reason == "too_late"
    resolve_event(None, event("ok", 72 * 60 - 1), RULES, NOW)


def test_events_from_the_far_future_are_refused():
    """More than a day ahead cannot be clock skew: time_in_future."""
    with pytest.raises(InvalidEvent) as caught:
        resolve_event(None, event("future", -25 * 60), RULES, NOW)
    assert caught.value.reason == "time_in_future"


def test_sessions_are_per_stream_and_identity_is_per_client():
    """Two GA4 streams keep separate sessions; a login on one stitches the other."""
    state, results = run(
        [
            event("a", 50, stream="G-1", user_id="u1"),
            event("b", 40, stream="G-2"),
            event("c", 5, stream="G-1"),
        ]
    )
    a, b, c = (r.resolved for r in results)
    assert a.session_number == b.session_number == 1
    assert a.session_id != b.session_id
    assert c.session_number == 2
    assert b.user_id == "u1"
    assert len(state.streams) == 2


def test_the_enriched_event_keeps_the_raw_payload_and_compares_the_browser_session():
    """enrich adds `resolved` beside the raw fields and flags a browser session mismatch."""
    raw = event(
        "a", 0, payload={"page_title": "Home", "client_id": "GA1.1.1.2"}, client_session_id=5
    )
    resolution = resolve_event(None, raw, RULES, NOW)
    enriched = enrich(raw, resolution.resolved, duplicate=False)
    assert enriched["page_title"] == "Home"
    resolved = enriched["resolved"]
    assert isinstance(resolved, dict)
    assert resolved["client_id"] == "1.2"
    assert resolved["incoming_client_id"] == "GA1.1.1.2"
    assert resolved["client_session_matches"] is False
    assert resolved["session_id"] == NOW // 1_000_000


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 600),
            st.sampled_from([None, "u1", "u2"]),
            st.sampled_from(["page_view", "login", "logout"]),
            st.sampled_from(["G-1", "G-2", ""]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_the_stored_document_round_trips_exactly(steps: list) -> None:
    """decode(encode(state)) == state for any reachable state."""
    state = None
    for index, (minutes, user, name, stream) in enumerate(steps):
        item = event(f"e{index}", minutes, user_id=user, stream=stream, name=name)
        state = resolve_event(state, item, RULES, NOW).state
    assert state is not None
    assert decode(encode(state)) == state


def test_the_stored_document_stays_bounded_as_history_grows():
    """After the windows fill, more history does not grow the document."""

    def size_after(count: int) -> int:
        events = [
            event(
                f"e{i}",
                4000 - i * 9,
                user_id=f"u{i % 7}" if i % 3 == 0 else None,
                name="logout" if i % 5 == 0 else "page_view",
            )
            for i in range(count)
        ]
        state, _ = run(events, replace(RULES, sessions=SessionRules(timeout_micros=5 * MINUTE)))
        assert state.stream("G-1").count == count
        return len(repr(encode(state)))

    assert size_after(400) <= size_after(200) * 1.02
