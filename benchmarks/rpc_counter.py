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

Documents are counted too, the unit Firestore bills (``documents()``): every name in a
``BatchGetDocuments`` is one read, found or missing; every ``Write`` of a ``Commit`` (or
``BatchWrite``) one write, or one delete when it is a delete; a ``RunQuery`` the documents
its responses carry, at least one. The writes of a ``Commit`` that failed are kept apart
(``write_failed`` / ``delete_failed``). One counter per client: give each function's
client its own to count the functions apart.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc

from shared.adapters.rpc import status_code

Continuation = Callable[[Any, Any], Any]


class RpcCounter(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Thread-safe counts of Firestore RPCs by method, and of failed unary calls by code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._bytes: Counter[str] = Counter()
        self._documents: Counter[str] = Counter()

    def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        method = self._count(client_call_details, request)
        outcome = continuation(client_call_details, request)
        code = outcome.code()
        documents = request_documents(method, request)
        with self._lock:
            if code is not None and code != grpc.StatusCode.OK:
                self._failures[f"{method}:{code.name}"] += 1
                if not (method == "GetDocument" and code == grpc.StatusCode.NOT_FOUND):
                    # A missing document is an answer, billed as a read like a batch
                    # get's missing name; other failures are kept apart.
                    documents = Counter({f"{kind}_failed": n for kind, n in documents.items()})
            elif method == "BatchWrite":
                documents = self._batch_write_outcomes(request, outcome.result(), documents)
            self._documents.update(documents)
        return outcome

    def _batch_write_outcomes(
        self, request: Any, response: Any, documents: Counter[str]
    ) -> Counter[str]:
        """A ``BatchWrite`` answers each write apart: a write refused inside an answered
        request is a failure like a failed ``Commit``'s (``BatchWrite:CODE``, its document
        kept apart). Called with the lock held."""
        writes = _message(request).writes
        for write, status in zip(writes, _message(response).status, strict=False):
            if status.code == 0:
                continue
            kind = "delete" if write.WhichOneof("operation") == "delete" else "write"
            self._failures[f"BatchWrite:{status_code(status.code).name}"] += 1
            documents[kind] -= 1
            documents[f"{kind}_failed"] += 1
        return +documents

    def intercept_unary_stream(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        method = self._count(client_call_details, request)
        responses = continuation(client_call_details, request)
        if method == "RunQuery":
            return _CountedQuery(responses, self._add_documents)
        with self._lock:
            self._documents.update(request_documents(method, request))
        return responses

    def _add_documents(self, kind: str, count: int) -> None:
        with self._lock:
            self._documents[kind] += count

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

    def documents(self) -> Counter[str]:
        """Documents by billing kind: ``read``, ``write``, ``delete`` (and the writes
        and deletes of failed commits as ``write_failed`` / ``delete_failed``)."""
        with self._lock:
            return Counter(self._documents)

    def bytes_per_write(self) -> float:
        """Mean serialized bytes of write requests (``Commit``, ``BatchWrite``) per document
        written: the documents' size on the wire, however many a request carries."""
        with self._lock:
            written = sum(
                n for kind, n in self._documents.items() if kind.startswith(("write", "delete"))
            )
            sent = self._bytes["Commit"] + self._bytes["BatchWrite"]
            return sent / written if written else 0.0

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
            self._documents.clear()


class _CountedQuery:
    """A ``RunQuery`` response stream that counts the documents it yields (at least one
    read per query, even an empty one), passing everything else through."""

    def __init__(self, responses: Any, add: Callable[[str, int], None]) -> None:
        self._responses = responses
        self._add = add
        self._documents = 0
        self._done = False

    def __iter__(self) -> _CountedQuery:
        return self

    def __next__(self) -> Any:
        try:
            response = next(self._responses)
        except StopIteration:
            self._finish()
            raise
        if getattr(response, "document", None) is not None and response.document.name:
            self._documents += 1
        return response

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._add("read", max(1, self._documents))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._responses, name)


def request_documents(method: str, request: Any) -> Counter[str]:
    """The documents one request bills, by kind, read from the request itself: a
    ``BatchGetDocuments`` reads every name it lists and ``GetDocument`` its one name (a
    missing document is still a read), a ``Commit`` or ``BatchWrite`` writes or deletes
    one document per ``Write``. Other methods (``BeginTransaction``, ``Rollback``...) bill
    no document."""
    message = _message(request)
    if method == "BatchGetDocuments":
        return Counter({"read": len(message.documents)})
    if method == "GetDocument":
        return Counter({"read": 1})
    if method in ("Commit", "BatchWrite"):
        kinds = Counter(
            "delete" if write.WhichOneof("operation") == "delete" else "write"
            for write in message.writes
        )
        return Counter({kind: n for kind, n in kinds.items() if n})
    return Counter()


def _request_bytes(request: Any) -> int:
    """Serialized size of a proto-plus request (the GAPIC layer hands those to gRPC)."""
    message = _message(request)
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


def _message(message: Any) -> Any:
    """The protobuf of a proto-plus message (the library's calls), or the message itself
    (raw calls)."""
    to_pb = getattr(type(message), "pb", None)
    return to_pb(message) if to_pb is not None else message
