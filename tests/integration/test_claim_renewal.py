"""Ledger claims are renewed while held, so a short lease never takes a live delivery over,
and a dead delivery's claim is taken over as soon as the lease has passed."""

from __future__ import annotations

import time

import pytest
from google.cloud import firestore

from shared.adapters.firestore.ledger import ClaimOutcome, FirestoreForwardLedger
from shared.errors import TransientError
from tests.conftest import PROJECT

pytestmark = pytest.mark.integration

MEASUREMENT_ID = "G-RENEWAL"
LEASE_MICROS = 1_000_000


def now_micros() -> int:
    return time.time_ns() // 1_000


def ledger(collection: str, renew: float | None) -> FirestoreForwardLedger:
    return FirestoreForwardLedger(
        firestore.Client(project=PROJECT),
        collection,
        LEASE_MICROS,
        renew_every_seconds=renew,
        clock=now_micros if renew else None,
    )


def test_a_live_claim_outlasts_the_lease_and_its_mark_still_holds(
    clean_firestore: str, unique: str
) -> None:
    """Held for 2.5 leases: every other delivery is refused meanwhile; the holder's mark
    (with the latest update_time as precondition) then lands, and renewal stops."""
    collection = f"forwarded_{unique}"
    holder, other = ledger(collection, renew=0.2), ledger(collection, renew=None)
    claim = holder.claim(MEASUREMENT_ID, "e-1", now_micros())
    assert claim.outcome is ClaimOutcome.SEND
    for _ in range(5):
        time.sleep(0.5)
        with pytest.raises(TransientError, match="another delivery"):
            other.claim(MEASUREMENT_ID, "e-1", now_micros())
    holder.mark_sent(claim, now_micros())
    document = holder._document(claim.key)
    sent = document.get()
    assert sent.get("state") == "sent"
    time.sleep(0.6)
    assert document.get().update_time == sent.update_time
    assert other.claim(MEASUREMENT_ID, "e-1", now_micros()).outcome is ClaimOutcome.ALREADY_SENT


def test_a_dead_deliverys_claim_is_taken_over_after_the_lease(
    clean_firestore: str, unique: str
) -> None:
    """A claim nobody renews (its delivery crashed) is refused within the lease and taken
    over after it; the crashed delivery's late mark then changes nothing."""
    collection = f"forwarded_{unique}"
    crashed, redelivery = ledger(collection, renew=None), ledger(collection, renew=0.2)
    lost = crashed.claim(MEASUREMENT_ID, "e-1", now_micros())
    with pytest.raises(TransientError):
        redelivery.claim(MEASUREMENT_ID, "e-1", now_micros())
    time.sleep(LEASE_MICROS / 1_000_000 + 0.1)
    taken = redelivery.claim(MEASUREMENT_ID, "e-1", now_micros())
    assert (taken.outcome, taken.taken_over) == (ClaimOutcome.SEND, True)
    crashed.mark_sent(lost, now_micros())
    assert redelivery._document(taken.key).get().get("state") == "sending"
    time.sleep(0.5)
    redelivery.mark_sent(taken, now_micros())
    assert redelivery._document(taken.key).get().get("state") == "sent"


def test_a_released_claim_is_no_longer_renewed(clean_firestore: str, unique: str) -> None:
    """release stops the renewal before it deletes, so nothing re-creates the entry."""
    store = ledger(f"forwarded_{unique}", renew=0.2)
    claim = store.claim(MEASUREMENT_ID, "e-1", now_micros())
    time.sleep(0.5)
    store.release(claim)
    time.sleep(0.5)
    assert not store._document(claim.key).get().exists
    assert store.claim(MEASUREMENT_ID, "e-1", now_micros()).outcome is ClaimOutcome.SEND


def test_renewal_needs_an_interval_below_the_lease() -> None:
    """An interval as long as the lease would let live claims lapse between renewals."""
    with pytest.raises(ValueError, match="below the lease"):
        FirestoreForwardLedger(object(), "c", 1_000_000, renew_every_seconds=1.0, clock=now_micros)
