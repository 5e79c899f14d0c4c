"""The two resolver designs behind one small interface, on equal footing.

Both receive the same decoded events (``decode_raw_event`` runs before either; invalid
events are dead-lettered for both) and talk to the same Firestore emulator through a
client whose RPCs an ``RpcCounter`` counts.

- ``BaselineDesign``: ``benchmarks.baseline.BaselineResolver`` given the event's payload
  exactly as received (its flaws, such as ``GA1.1.`` client ids, are the point).
- ``StitchDesign``: ga4-stitch's ``ResolveRuntime.process`` with the real
  ``FirestoreStateStore`` and a ``RecordingPublisher`` that keeps counts instead of
  publishing (Pub/Sub costs the same for both designs; the end-to-end benchmark pays it).

A design answers with the SENT line of what would reach GA4, or ``None`` and a status;
it raises only for what Pub/Sub would redeliver (``TransientError``, or a crash).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from benchmarks.baseline import BaselineResolver
from benchmarks.rpc_counter import RpcCounter, counting_client
from shared import bootstrap
from shared.domain.events import RawEvent
from shared.domain.messages import OutgoingMessage
from shared.errors import PermanentError
from shared.services.resolve import ResolveRuntime
from shared.settings import Settings

PROJECT = "demo-ga4-stitch"
SENT_FIELDS = ("event_id", "client_id", "user_id", "session_id", "session_number")


@dataclass(frozen=True)
class Answer:
    status: str
    """``resolved``, ``duplicate`` (recognised redelivery, nothing new reaches GA4),
    ``dead_lettered:<reason>`` or ``failed:<error>`` (the design cannot process it)."""
    sent: dict[str, Any] | None = None


class Design(Protocol):
    def answer(self, event: RawEvent) -> Answer: ...


DesignFactory = Callable[[int], Design]
"""The design worker ``n`` uses: the same object for all (one instance) or one each."""


class RecordingPublisher:
    """A ``shared.ports.Publisher`` that counts messages by topic and publishes nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: Counter[str] = Counter()

    def publish_all(self, messages: Sequence[OutgoingMessage]) -> None:
        with self._lock:
            self.messages.update(message.topic for message in messages)


class BaselineDesign:
    def __init__(self, resolver: BaselineResolver) -> None:
        self._resolver = resolver

    def answer(self, event: RawEvent) -> Answer:
        from google.api_core.exceptions import InvalidArgument

        try:
            resolved = self._resolver.resolve(dict(event.payload))
        except (ValueError, InvalidArgument) as exc:
            return Answer(f"failed:{type(exc).__name__}")
        return Answer("resolved", {key: resolved[key] for key in SENT_FIELDS})


class StitchDesign:
    def __init__(self, runtime: ResolveRuntime) -> None:
        self._runtime = runtime

    def answer(self, event: RawEvent) -> Answer:
        try:
            outcome = self._runtime.process(event)
        except PermanentError as error:
            return Answer(f"dead_lettered:{error.reason}")
        if outcome.enriched is None:
            return Answer(outcome.status)
        resolved = outcome.enriched["resolved"]
        line = {key: resolved[key] for key in SENT_FIELDS}
        if outcome.status == "duplicate":
            return Answer("duplicate")
        return Answer(outcome.status, line)


def baseline_factory(counter: RpcCounter, prefix: str, seed: int = 1) -> DesignFactory:
    """One baseline for every worker: the design keeps no state in the instance."""
    resolver = BaselineResolver(
        counting_client(PROJECT, counter), collection_prefix=prefix, rng=random.Random(seed)
    )
    design = BaselineDesign(resolver)
    return lambda _worker: design


def stitch_runtime(
    counter: RpcCounter, settings: Settings, now_micros: int, publisher: RecordingPublisher
) -> ResolveRuntime:
    """Our resolver as one function instance, wired as ``shared.bootstrap`` wires it
    (state store and cross-domain evidence on one client), with its own cache."""
    client = counting_client(PROJECT, counter)
    return ResolveRuntime(
        bootstrap.resolve_config(settings),
        bootstrap.state_store(settings, client),
        publisher,
        clock=lambda: now_micros,
        sleep=time.sleep,
        link_evidence=bootstrap.link_store(settings, client),
    )


def stitch_factory(
    counter: RpcCounter,
    prefix: str,
    now_micros: int,
    publisher: RecordingPublisher,
    *,
    per_worker: bool,
) -> DesignFactory:
    """ga4-stitch as one shared instance, or (``per_worker``) one instance per worker,
    like separate Cloud Run instances, each with its own cache."""
    settings = Settings(project=PROJECT, collection_prefix=prefix)
    if not per_worker:
        shared = StitchDesign(stitch_runtime(counter, settings, now_micros, publisher))
        return lambda _worker: shared
    instances: dict[int, Design] = {}
    lock = threading.Lock()

    def for_worker(worker: int) -> Design:
        with lock:
            if worker not in instances:
                runtime = stitch_runtime(counter, settings, now_micros, publisher)
                instances[worker] = StitchDesign(runtime)
            return instances[worker]

    return for_worker
