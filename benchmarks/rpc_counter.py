"""Firestore RPCs counted where they leave the process: a gRPC client interceptor.

``counting_client(project, counter)`` is a ``google.cloud.firestore.Client`` whose
emulator channel is wrapped by ``grpc.intercept_channel`` with an ``RpcCounter``, so
every call the client library sends, retries included, is counted by its gRPC method
(``Commit``, ``BatchGetDocuments``, ``BeginTransaction``...) whatever code issued it.
Nothing is inferred from the calling code: a ``DocumentReference.get`` counts as the one
``BatchGetDocuments`` it sends, a batch or transaction commit as one ``Commit``.

Request sizes are summed per method too (serialized protobuf bytes: a ``Commit``
carries whole documents). Unary calls also record their outcome (``Commit`` failing
``FAILED_PRECONDITION`` is a lost optimistic race); streaming calls are counted when
they start.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc

Continuation = Callable[[Any, Any], Any]


class RpcCounter(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Thread-safe counts of Firestore RPCs by method, and of failed unary calls by code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._bytes: Counter[str] = Counter()

    def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        method = self._count(client_call_details, request)
        outcome = continuation(client_call_details, request)
        code = outcome.code()
        if code is not None and code != grpc.StatusCode.OK:
            with self._lock:
                self._failures[f"{method}:{code.name}"] += 1
        return outcome

    def intercept_unary_stream(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        self._count(client_call_details, request)
        return continuation(client_call_details, request)

    def _count(self, client_call_details: Any, request: Any) -> str:
        method = str(client_call_details.method).rsplit("/", 1)[-1]
        size = _request_bytes(request)
        with self._lock:
            self._calls[method] += 1
            self._bytes[method] += size
        return method

    def calls(self) -> Counter[str]:
        """RPCs sent so far, by method."""
        with self._lock:
            return Counter(self._calls)

    def failures(self) -> Counter[str]:
        """Unary RPCs that ended with an error, as ``Method:CODE``."""
        with self._lock:
            return Counter(self._failures)

    def mean_request_bytes(self, method: str) -> float:
        """Mean serialized request size of ``method`` (a ``Commit`` carries the documents)."""
        with self._lock:
            calls = self._calls[method]
            return self._bytes[method] / calls if calls else 0.0

    def total(self) -> int:
        with self._lock:
            return sum(self._calls.values())

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._failures.clear()
            self._bytes.clear()


def _request_bytes(request: Any) -> int:
    """Serialized size of a proto-plus request (the GAPIC layer hands those to gRPC)."""
    to_pb = getattr(type(request), "pb", None)
    message = to_pb(request) if to_pb is not None else request
    size = getattr(message, "ByteSize", None)
    return int(size()) if size is not None else 0


def counting_client(project: str, counter: RpcCounter) -> Any:
    """A Firestore client on the emulator (``FIRESTORE_EMULATOR_HOST``) whose every RPC
    passes through ``counter``."""
    from google.cloud import firestore

    class CountingClient(firestore.Client):
        def _emulator_channel(self, transport: Any) -> Any:
            if self._emulator_host is None:
                raise RuntimeError("RPCs are counted on the emulator only")
            channel = super()._emulator_channel(transport)  # type: ignore[no-untyped-call]
            return grpc.intercept_channel(channel, counter)

    client = CountingClient(project=project)
    if client._emulator_host is None:
        raise RuntimeError("set FIRESTORE_EMULATOR_HOST: benchmarks run on the emulator only")
    return client


def per_event(calls: Counter[str], events: int) -> dict[str, float]:
    """RPCs per event by method, plus ``total``."""
    if events <= 0:
        return {"total": 0.0}
    figures = {method: count / events for method, count in sorted(calls.items())}
    figures["total"] = sum(calls.values()) / events
    return figures
