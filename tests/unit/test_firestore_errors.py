"""The one Firestore error map, row by row."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from shared.adapters.firestore.errors import DocumentExists, translated
from shared.errors import ConcurrentUpdate, PermanentError, StitchError, TransientError


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (gexc.AlreadyExists("exists"), DocumentExists),
        (gexc.FailedPrecondition("stale"), ConcurrentUpdate),
        (gexc.Aborted("lock timeout"), ConcurrentUpdate),
        (gexc.Conflict("conflict"), ConcurrentUpdate),
        (gexc.NotFound("gone"), ConcurrentUpdate),
        (gexc.InvalidArgument("too large"), PermanentError),
        (gexc.OutOfRange("range"), PermanentError),
        (gexc.PermissionDenied("no role"), TransientError),
        (gexc.Unauthenticated("no token"), TransientError),
        (gexc.ServiceUnavailable("down"), TransientError),
        (gexc.DeadlineExceeded("slow"), TransientError),
        (gexc.InternalServerError("oops"), TransientError),
        (gexc.ResourceExhausted("quota"), TransientError),
        (gexc.Unknown("?"), TransientError),
        (gexc.Cancelled("cancelled"), TransientError),
        (gexc.RetryError("gave up", cause=None), TransientError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
)
def test_each_google_error_becomes_its_place_in_our_tree(
    raised: Exception, expected: type[StitchError]
) -> None:
    """Contention re-reads, bad requests dead-letter, everything else retries."""
    with pytest.raises(StitchError) as caught, translated("test"):
        raise raised
    assert type(caught.value) is expected
    assert caught.value.__cause__ is raised


def test_a_transient_kind_is_never_a_permanent_one() -> None:
    """A retryable error must not be dead-lettered by accident of inheritance."""
    assert not issubclass(DocumentExists, PermanentError)
    assert issubclass(DocumentExists, TransientError)


def test_our_own_errors_pass_through_untouched() -> None:
    """Only library errors are translated."""
    error = PermanentError("x", "y")
    with pytest.raises(PermanentError) as caught, translated("test"):
        raise error
    assert caught.value is error
