"""The one map from google-api-core errors to ga4-stitch's error tree, for every Firestore call.

::

    AlreadyExists                                -> DocumentExists   (a ConcurrentUpdate)
    FailedPrecondition, Aborted, NotFound,
    any other Conflict                           -> ConcurrentUpdate (re-read, decide again)
    InvalidArgument, OutOfRange                  -> PermanentError("firestore_rejected")
    PermissionDenied, Unauthenticated            -> TransientError   (the deployment is wrong,
                                                    not the message: retry until it is fixed)
    any other GoogleAPIError or RetryError       -> TransientError   (availability)

Why permission errors are transient: dead-lettering every message because a service
account lost a role would lose a day of traffic to a configuration slip that the
alerting already reports; retrying keeps the messages until the role is back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.errors import ConcurrentUpdate, PermanentError, TransientError

__all__ = ["DocumentExists", "translated"]


class DocumentExists(ConcurrentUpdate):
    """A ``create`` found the document already there."""


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """Run Firestore calls with their errors mapped as the module docstring draws."""
    from google.api_core import exceptions as gexc

    try:
        yield
    except gexc.AlreadyExists as exc:
        raise DocumentExists(f"{operation}: document exists: {exc.message}") from exc
    except (gexc.FailedPrecondition, gexc.Conflict, gexc.NotFound) as exc:
        raise ConcurrentUpdate(f"{operation}: changed concurrently: {exc.message}") from exc
    except (gexc.InvalidArgument, gexc.OutOfRange) as exc:
        raise PermanentError("firestore_rejected", f"{operation}: {exc.message}") from exc
    except (gexc.PermissionDenied, gexc.Unauthenticated) as exc:
        raise TransientError(f"{operation}: Firestore refused access: {exc.message}") from exc
    except gexc.GoogleAPIError as exc:
        raise TransientError(f"{operation}: Firestore unavailable: {exc}") from exc
