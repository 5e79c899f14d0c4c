"""The one retry policy: tenacity, transient errors only, bounded by attempts and time.

Invariant: a ``PermanentError`` is never retried (it is dead-lettered by the caller), and
a ``TransientError`` that outlives the budget is re-raised unchanged so the function
answers 500 and Pub/Sub redelivers later with its own backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import tenacity

from shared.errors import TransientError


def transient_retry(
    *,
    attempts: int,
    budget_seconds: float,
    logger: logging.Logger,
    initial_wait: float = 0.05,
    max_wait: float = 2.0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = TransientError,
    sleep: Callable[[float], None] | None = None,
) -> tenacity.Retrying:
    """A ``Retrying`` with exponential backoff and full jitter; ``sleep`` is injectable."""
    options: dict[str, Any] = {}
    if sleep is not None:
        options["sleep"] = sleep
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(retry_on),
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(budget_seconds),
        wait=tenacity.wait_random_exponential(multiplier=initial_wait, max=max_wait),
        before_sleep=tenacity.before_sleep_log(logger, logging.WARNING),
        reraise=True,
        **options,
    )
