"""The two Firestore calls on the functions' hot paths, as raw protobuf RPCs.

``DocumentService`` reads one document (``GetDocument``) and commits writes (``Commit``)
on the ``google.cloud.firestore.Client``'s own channel and metadata, through
``shared.adapters.rpc.UnaryCall`` (why, with the measured CPU: that module's docstring).
Everything else (queries, transactions, identity links' readers, admin) keeps the
library's API.

Invariants:
- The same RPCs as the library's ``DocumentReference.get`` / ``WriteBatch.commit`` would
  bill: one read per ``get`` (found or missing), one write per ``Write`` committed.
- Retries are the library's defaults for these two methods (``get``: unavailable,
  resource exhausted, internal and deadline errors; ``commit``: unavailable and resource
  exhausted only, since a commit that may have applied is not blindly repeated), within
  60 seconds; errors are api_core's, as the generated methods raise them, so
  ``errors.translated`` maps them.
- Versions are the ``update_time`` protobuf timestamps the service returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.adapters.rpc import UnaryCall, routing_metadata

__all__ = ["DocumentService", "field_values", "version_order"]

DEADLINE_SECONDS = 60.0


def _retry(*retryable: type[Exception]) -> Any:
    from google.api_core import retry

    return retry.Retry(
        initial=0.1,
        maximum=60.0,
        multiplier=1.3,
        predicate=retry.if_exception_type(*retryable),
        timeout=DEADLINE_SECONDS,
    )


class DocumentService:
    """Reads and commits of one client's database; thread-safe (gRPC stubs are)."""

    def __init__(self, client: Any) -> None:
        from google.api_core import exceptions as gexc
        from google.cloud.firestore_v1.types import common, document, firestore

        channel = client._firestore_api.transport.grpc_channel
        self.database = str(client._database_string)
        metadata = tuple(client._rpc_metadata)
        self._get = UnaryCall(
            channel,
            "/google.firestore.v1.Firestore/GetDocument",
            firestore.GetDocumentRequest.pb(),
            document.Document.pb(),
            timeout=DEADLINE_SECONDS,
            retry=_retry(
                gexc.DeadlineExceeded,
                gexc.InternalServerError,
                gexc.ResourceExhausted,
                gexc.ServiceUnavailable,
            ),
            metadata=metadata,
        )
        self._commit = UnaryCall(
            channel,
            "/google.firestore.v1.Firestore/Commit",
            firestore.CommitRequest.pb(),
            firestore.CommitResponse.pb(),
            timeout=DEADLINE_SECONDS,
            retry=_retry(gexc.ResourceExhausted, gexc.ServiceUnavailable),
            metadata=(*metadata, routing_metadata("database", self.database)),
        )
        self._get_request = firestore.GetDocumentRequest.pb()
        self._commit_request = firestore.CommitRequest.pb()
        self._mask = common.DocumentMask.pb()

    def path(self, collection: str, document_id: str) -> str:
        """The full resource name of a document of a top-level collection."""
        return f"{self.database}/documents/{collection}/{document_id}"

    def get(self, path: str, field_paths: Sequence[str] | None = None) -> Any | None:
        """The stored ``Document`` (only ``field_paths`` when given), or None if there is
        none."""
        from google.api_core import exceptions as gexc

        if field_paths is None:
            request = self._get_request(name=path)
        else:
            request = self._get_request(name=path, mask=self._mask(field_paths=field_paths))
        try:
            return self._get(request, (routing_metadata("name", path),))
        except gexc.NotFound:
            return None

    def commit(self, writes: Sequence[Any]) -> Sequence[Any]:
        """Commits ``writes`` (``Write`` protobufs) atomically; their ``WriteResult``\\ s,
        in order."""
        response = self._commit(self._commit_request(database=self.database, writes=writes))
        return response.write_results  # type: ignore[no-any-return]


def field_values(document: Any) -> dict[str, Any]:
    """A ``Document``'s fields as Python values, as ``DocumentSnapshot.to_dict`` gives
    them (timestamps as ``DatetimeWithNanoseconds``, maps and arrays decoded)."""
    from google.cloud.firestore_v1 import _helpers

    values: dict[str, Any] = _helpers.decode_dict(document.fields, None)  # type: ignore[assignment]
    return values


def version_order(version: Any) -> tuple[int, int]:
    """A version's place in time, for comparing two versions of one document."""
    return (version.seconds, version.nanos)
