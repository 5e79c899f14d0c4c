"""BASELINE, the design to beat, not part of the product: the resolver most server-side
GTM guides publish, kept faithful to its flaws so that ga4-stitch is measured against it.

Per event, as an HTTP-style function calling Firestore without a transaction:

1. ``get`` ``user_identity_map/{client_id}``; ``set`` it when the event brings a user id
   and there is none, ``update`` it when the user id differs; an anonymous event takes
   the mapped user;
2. ``get`` ``session_state/{client_id}``; ``set`` it for a client's first session,
   ``update`` it when 30 minutes or more passed since ``last_event_timestamp``;
3. ``update`` ``last_event_timestamp`` to this event's time.

Session ids are ``"{client_id}.{event_ms}.{random}"`` strings; the user mapping is kept
forever. Known flaws, kept on purpose:

- a late event sets ``last_event_timestamp`` back, so the next on-time event sees a long
  gap and opens an extra session;
- no deduplication: a redelivered event is resolved (and sent) again;
- no logout handling: a client stays mapped to its last user for good;
- client ids are used as received: ``GA1.1.X.Y`` and ``X.Y`` are two clients, a
  cross-domain client is never aliased, and a server-managed id holding ``/`` is not a
  document id at all (the call fails);
- read-then-write without atomicity: concurrent events of one client lose updates;
- about 3.1 Firestore calls per event (two reads, one update, occasional writes).

Run it over a simulated stream on the Firestore emulator, then score it::

    FIRESTORE_EMULATOR_HOST=127.0.0.1:8080 python -m benchmarks.baseline events.ndjson \\
        > sent.ndjson && ga4-stitch score sent.ndjson --truth truth.ndjson
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

SESSION_TIMEOUT_MS = 30 * 60 * 1000
PROJECT = "demo-ga4-stitch"


class BaselineResolver:
    """The guides' resolver. ``calls`` counts Firestore calls by kind (get/set/update)."""

    def __init__(
        self,
        firestore_client: Any,
        collection_prefix: str = "baseline_",
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = firestore_client
        self._identity = f"{collection_prefix}user_identity_map"
        self._sessions = f"{collection_prefix}session_state"
        self._rng = rng or random.Random()
        self._clock = clock
        self.calls: Counter[str] = Counter()

    def resolve(self, raw_event: dict[str, Any]) -> dict[str, Any]:
        """The client, user and session for one raw event, as the guides compute them."""
        client_id = raw_event.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("event has no client_id")
        event_ms = self._event_ms(raw_event)
        user_id = self._user(client_id, raw_event.get("user_id"), event_ms)
        session_id, session_number = self._session(client_id, event_ms)
        return {
            "event_id": raw_event.get("event_id"),
            "client_id": client_id,
            "user_id": user_id,
            "session_id": session_id,
            "session_number": session_number,
        }

    def _user(self, client_id: str, incoming: Any, event_ms: int) -> str | None:
        ref = self._db.collection(self._identity).document(client_id)
        snapshot = self._call("get", ref.get)
        stored = snapshot.to_dict() if snapshot.exists else None
        if incoming:
            user_id = str(incoming)
            if stored is None:
                self._call("set", ref.set, {"user_id": user_id, "first_seen": event_ms})
            elif stored.get("user_id") != user_id:
                self._call("update", ref.update, {"user_id": user_id, "updated_at": event_ms})
            return user_id
        return None if stored is None else stored.get("user_id")

    def _session(self, client_id: str, event_ms: int) -> tuple[str, int]:
        ref = self._db.collection(self._sessions).document(client_id)
        snapshot = self._call("get", ref.get)
        state = snapshot.to_dict() if snapshot.exists else None
        new_id = f"{client_id}.{event_ms}.{self._rng.randint(0, 999_999_999)}"
        if state is None:
            session_id, number = new_id, 1
            self._call(
                "set",
                ref.set,
                {"session_id": session_id, "session_number": number, "session_start": event_ms},
            )
        elif event_ms - int(state["last_event_timestamp"]) >= SESSION_TIMEOUT_MS:
            session_id, number = new_id, int(state["session_number"]) + 1
            self._call(
                "update",
                ref.update,
                {"session_id": session_id, "session_number": number, "session_start": event_ms},
            )
        else:
            session_id, number = str(state["session_id"]), int(state["session_number"])
        self._call("update", ref.update, {"last_event_timestamp": event_ms})
        return session_id, number

    def _event_ms(self, raw_event: dict[str, Any]) -> int:
        """The event's time in ms, else now (``Number(x) || Date.now()`` in the guides)."""
        micros = raw_event.get("timestamp_micros")
        if isinstance(micros, int) and micros > 0:
            return micros // 1000
        for key in ("event_timestamp", "gtm.start"):
            value = raw_event.get(key)
            if isinstance(value, int) and value > 0:
                return value
        return int(self._clock() * 1000)

    def _call(self, kind: str, method: Callable[..., Any], *args: Any) -> Any:
        self.calls[kind] += 1
        return method(*args)


def sent_line(raw_event: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
    """The SENT record of one resolved event: what reached GA4 and in which request."""
    params: dict[str, Any] = {
        "session_id": resolved["session_id"],
        "engagement_time_msec": raw_event.get("engagement_time_msec", 1),
    }
    for key in ("page_location", "page_referrer", "page_title"):
        if key in raw_event:
            params[key] = raw_event[key]
    request: dict[str, Any] = {
        "client_id": resolved["client_id"],
        "events": [{"name": raw_event.get("event_name"), "params": params}],
    }
    if resolved["user_id"] is not None:
        request["user_id"] = resolved["user_id"]
    if isinstance(raw_event.get("timestamp_micros"), int):
        request["timestamp_micros"] = raw_event["timestamp_micros"]
    return {**resolved, "request": request}


def run_baseline(
    events: Iterable[dict[str, Any]],
    resolver: BaselineResolver,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """SENT lines for events in delivery order, and the errors that stopped the others
    (an event the resolver fails on never reaches GA4). Failures are the design's own: no
    client id, or a client id that is not a document id (``/`` in server-managed ids)."""
    from google.api_core.exceptions import InvalidArgument

    sent: list[dict[str, Any]] = []
    errors: Counter[str] = Counter()
    for count, raw_event in enumerate(events, start=1):
        try:
            sent.append(sent_line(raw_event, resolver.resolve(raw_event)))
        except (ValueError, InvalidArgument) as exc:
            errors[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
        if progress is not None:
            progress(count)
    return sent, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.baseline",
        description="Resolve raw events with the BASELINE on the Firestore emulator and "
        "write SENT NDJSON to stdout.",
    )
    parser.add_argument("events", help="raw events NDJSON, in delivery order")
    parser.add_argument("--project", default=PROJECT)
    parser.add_argument("--collection-prefix", default="baseline_")
    args = parser.parse_args(argv)
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        print(
            "baseline: set FIRESTORE_EMULATOR_HOST; it only runs on the emulator", file=sys.stderr
        )
        return 2
    try:
        with open(args.events, encoding="utf-8") as lines:
            events = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        print(f"baseline: cannot read {args.events}: {exc}", file=sys.stderr)
        return 2
    from google.cloud import firestore

    resolver = BaselineResolver(
        firestore.Client(project=args.project), collection_prefix=args.collection_prefix
    )

    def report(count: int) -> None:
        if count % 1000 == 0 or count == len(events):
            print(f"baseline: resolved {count}/{len(events)} events", file=sys.stderr)

    sent, errors = run_baseline(events, resolver, report)
    for line in sent:
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    calls = sum(resolver.calls.values())
    print(
        f"baseline: {len(sent)} sent, {sum(errors.values())} failed {dict(errors)}, "
        f"{calls / max(1, len(events)):.2f} Firestore calls per event {dict(resolver.calls)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
