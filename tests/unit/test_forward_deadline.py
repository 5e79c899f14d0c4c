"""The deadline invariant of the forward function, checked against the deployed defaults.

One send lasts at most the retry budget plus one attempt (connect + read timeout), plus the
batch window through the Data Manager API (re-sends after refusals share the budget); before it
the ledger is read once, after it the ledger write has its own 5 s budget plus one write.
All of it must end before the function's timeout, which Terraform already keeps at most
the push subscription's ack deadline, or Pub/Sub would redeliver a message that is still being sent.
"""

from __future__ import annotations

import re

from shared.adapters.data_manager import DataManagerClient
from shared.adapters.ga4_http import RETRY_INITIAL_WAIT, RETRY_MAX_WAIT, Ga4Client
from tests.terraform.configuration import load_configuration

LEDGER_MARK_SECONDS = 5.0 + 5.0
"""The ledger's read and the forward service's write budget, then one more write
(generous)."""


def terraform_defaults() -> tuple[float, float, int, float, float]:
    variables = load_configuration().variables
    function_type = str(variables["forward_function"]["type"])
    match = re.search(r"timeout_seconds = optional\(number, (\d+)\)", function_type)
    assert match is not None
    return (
        float(variables["ga4_timeout_seconds"]["default"]),
        float(variables["ga4_retry_budget_seconds"]["default"]),
        int(variables["ga4_retry_attempts"]["default"]),
        float(match.group(1)),
        float(variables["ack_deadline_seconds"]["default"]),
    )


def test_the_longest_send_and_its_mark_end_before_the_function_timeout_and_ack_deadline() -> None:
    """28.05 s of sending + 10 s of ledger < 60 s function timeout <= 60 s ack deadline."""
    timeout, budget, attempts, function_timeout, ack_deadline = terraform_defaults()
    client = Ga4Client(
        endpoint="http://127.0.0.1:9",
        api_secret="x",
        timeout_seconds=timeout,
        attempts=attempts,
        budget_seconds=budget,
    )
    assert client.longest_send_seconds == budget + min(3.05, timeout) + timeout == 28.05
    assert client.longest_send_seconds + LEDGER_MARK_SECONDS < function_timeout <= ack_deadline


def test_the_default_backoff_fits_the_default_budget_with_room_for_every_attempt() -> None:
    """Four attempts wait at most 1 + 2 + 4 s: the budget, not luck, bounds a slow GA4."""
    _, budget, attempts, _, _ = terraform_defaults()
    ceilings = [min(RETRY_MAX_WAIT, RETRY_INITIAL_WAIT * 2**n) for n in range(attempts - 1)]
    assert sum(ceilings) == 7.0 < budget


def test_a_batched_data_manager_send_and_its_mark_end_before_the_function_timeout() -> None:
    """1 s batch window + 20 s budget + 5 s attempt = 26 s, + 10 s of ledger < 60 s."""
    timeout, budget, attempts, function_timeout, ack_deadline = terraform_defaults()
    variables = load_configuration().variables
    window_ms = float(variables["data_manager_batch_window_ms"]["default"])
    client = DataManagerClient(
        client=object(),
        timeout_seconds=timeout,
        attempts=attempts,
        budget_seconds=budget,
        batch_window_seconds=window_ms / 1000,
    )
    assert client.longest_send_seconds == window_ms / 1000 + budget + timeout == 26.0
    assert client.longest_send_seconds + LEDGER_MARK_SECONDS < function_timeout <= ack_deadline
