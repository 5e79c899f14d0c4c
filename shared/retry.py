"""The one retry policy: tenacity, transient errors only, bounded by attempts and time.

Invariants:
- A ``PermanentError`` is never retried (it is dead-lettered by the caller), and a
  ``TransientError`` that outlives the bounds is re-raised unchanged, so the function
  answers 500 and Pub/Sub redelivers later with its own backoff.
- Waits use full jitter: before attempt ``n + 1`` the policy sleeps a uniform draw from
  ``[0, min(max_wait, initial_wait * 2 ** (n - 1))]`` seconds, so instances that failed
  together do not come back together.
- A wait the server asked for (``requested_wait``, e.g. HTTP ``Retry-After``) replaces the
  jittered one, uncapped: the server knows when it will take the request again.
- Every retry is logged as one structured line (``event="retrying"``) with the attempt,
  the wait, the error and the caller's fields (``event_id``), so an operator can tell which
  event is being retried and why.
- No attempt starts after the budget: before sleeping, the policy gives up (re-raising the
  last error at once) if the time already spent plus the coming wait reaches
  ``budget_seconds``. So one call lasts at most ``budget_seconds`` plus one attempt; the
  caller keeps that below its own deadline.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

import tenacity

from shared.errors import TransientError

__all__ = ["retry_log", "spent_seconds", "transient_retry"]


def spent_seconds(state: tenacity.RetryCallState) -> float:
    """Time this call has used so far, counting every wait at its full length.

    With the real sleep the wall-clock term always wins (it includes the waits); with an
    injected sleep that returns at once, the waits still count, so a test sees the budget
    decisions production would make.
    """
    return max(state.seconds_since_start or 0.0, state.idle_for)


def _full_jitter(
    initial_wait: float, max_wait: float, uniform: Callable[[float, float], float]
) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        ceiling = min(max_wait, initial_wait * 2 ** (state.attempt_number - 1))
        return uniform(0.0, ceiling)

    return wait


def _honouring(
    base: Callable[[tenacity.RetryCallState], float],
    requested_wait: Callable[[BaseException], float | None],
) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        requested = requested_wait(error) if error is not None else None
        return base(state) if requested is None else requested

    return wait


def _stop(attempts: int, budget_seconds: float) -> Callable[[tenacity.RetryCallState], bool]:
    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= attempts:
            return True
        return spent_seconds(state) + state.upcoming_sleep >= budget_seconds

    return stop


def retry_log(
    logger: logging.Logger, fields: Mapping[str, Any] | None = None
) -> Callable[[tenacity.RetryCallState], None]:
    """Before each sleep: one WARNING line saying what failed, which attempt, how long the
    wait is, and the caller's ``fields``."""

    def log(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.upcoming_sleep
        logger.warning(
            "retrying in %.2f s after attempt %d: %s",
            wait,
            state.attempt_number,
            error,
            extra={
                "event": "retrying",
                "attempt": state.attempt_number,
                "wait_seconds": round(wait, 3),
                "error": f"{type(error).__name__}: {error}"[:500] if error else None,
                **(fields or {}),
            },
        )

    return log


def transient_retry(
    *,
    attempts: int,
    budget_seconds: float,
    logger: logging.Logger,
    initial_wait: float = 0.05,
    max_wait: float = 2.0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = TransientError,
    requested_wait: Callable[[BaseException], float | None] | None = None,
    sleep: Callable[[float], None] | None = None,
    uniform: Callable[[float, float], float] | None = None,
    log_fields: Mapping[str, Any] | None = None,
) -> tenacity.Retrying:
    """A ``Retrying`` with exponential backoff, full jitter and a time budget.

    The defaults suit Firestore contention (tens of milliseconds); remote HTTP services pass
    waits in seconds. ``sleep`` and ``uniform`` (the jitter's random source) are
    injectable for tests.
    """
    wait = _full_jitter(initial_wait, max_wait, uniform or random.uniform)
    options: dict[str, Any] = {}
    if sleep is not None:
        options["sleep"] = sleep
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        stop=_stop(attempts, budget_seconds),
        wait=wait if requested_wait is None else _honouring(wait, requested_wait),
        before_sleep=retry_log(logger, log_fields),
        reraise=True,
        **options,
    )
