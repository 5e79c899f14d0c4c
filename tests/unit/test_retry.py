"""The retry policy: ``RetryPolicy.run`` (first attempt direct, tenacity only after a
retryable failure) against the bounds, waits and log lines ``transient_retry`` keeps."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import tenacity

from shared.errors import PermanentError, TransientError
from shared.retry import RetryPolicy, _options, _stop, retry_log

LOGGER = logging.getLogger("tests.retry")


class Unavailable(TransientError):
    """A transient failure that may name the wait the server asked for."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def requested(error: BaseException) -> float | None:
    return getattr(error, "retry_after", None)


def highest(low: float, high: float) -> float:
    """A jitter source that always draws the ceiling, so waits are deterministic."""
    return high


class Script:
    """A callable that plays its outcomes in order: an exception is raised, anything else
    returned; it records every call's arguments."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def retrying_lines(caplog: pytest.LogCaptureFixture) -> Callable[[], list[Any]]:
    caplog.set_level(logging.WARNING, logger=LOGGER.name)
    return lambda: [r for r in caplog.records if getattr(r, "event", None) == "retrying"]


@pytest.fixture
def no_tenacity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a ``tenacity.Retrying`` fails the test."""

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a tenacity.Retrying was built")

    monkeypatch.setattr(tenacity.Retrying, "__init__", refuse)


def policy(sleeps: list[float], **options: Any) -> RetryPolicy:
    defaults: dict[str, Any] = {
        "attempts": 4,
        "budget_seconds": 20.0,
        "logger": LOGGER,
        "initial_wait": 1.0,
        "max_wait": 8.0,
        "sleep": sleeps.append,
        "uniform": highest,
    }
    return RetryPolicy(**{**defaults, **options})


@pytest.mark.usefixtures("no_tenacity")
def test_a_first_attempt_that_succeeds_builds_no_tenacity_object_and_no_log_fields(
    sleeps: list[float],
) -> None:
    """One direct call with its arguments; the log fields' function is never called."""
    call = Script("done")

    def fields() -> dict[str, Any]:
        raise AssertionError("log fields built without a retry")

    assert policy(sleeps).run(call, "a", 2, log_fields=fields) == "done"
    assert call.calls == [("a", 2)]
    assert sleeps == []


@pytest.mark.usefixtures("no_tenacity")
@pytest.mark.parametrize("error", [PermanentError("bad", "detail"), ValueError("bug")])
def test_an_error_not_retried_leaves_after_one_call_without_tenacity(
    sleeps: list[float], error: Exception
) -> None:
    """A PermanentError (or a bug) is raised as it is, at once."""
    call = Script(error)
    with pytest.raises(type(error)) as caught:
        policy(sleeps).run(call)
    assert caught.value is error
    assert (len(call.calls), sleeps) == (1, [])


def test_a_first_failure_then_success_is_two_calls_and_one_line_for_attempt_1(
    sleeps: list[float], retrying_lines: Callable[[], list[Any]]
) -> None:
    """The wait after attempt 1 is the first ceiling; the line carries the caller's fields."""
    call = Script(Unavailable("503"), "done")
    result = policy(sleeps).run(call, "x", log_fields=lambda: {"event_id": "e-1"})
    assert result == "done"
    assert call.calls == [("x",), ("x",)]
    assert sleeps == [1.0]
    [line] = retrying_lines()
    assert (line.attempt, line.wait_seconds, line.event_id) == (1, 1.0, "e-1")
    assert line.error == "Unavailable: 503"


def test_exhausted_attempts_reraise_the_last_error_after_exactly_that_many_calls(
    sleeps: list[float], retrying_lines: Callable[[], list[Any]]
) -> None:
    """Three attempts: three calls, two waits (ceilings 1 and 2 s), the third error raised."""
    errors = [Unavailable(f"503 #{n}") for n in range(1, 4)]
    call = Script(*errors)
    with pytest.raises(Unavailable) as caught:
        policy(sleeps, attempts=3).run(call, log_fields={"event_id": "e-2"})
    assert caught.value is errors[-1]
    assert len(call.calls) == 3
    assert sleeps == [1.0, 2.0]
    assert [(line.attempt, line.event_id) for line in retrying_lines()] == [
        (1, "e-2"),
        (2, "e-2"),
    ]


def test_one_attempt_reraises_the_first_error_without_waiting(sleeps: list[float]) -> None:
    error = Unavailable("503")
    call = Script(error)
    with pytest.raises(Unavailable) as caught:
        policy(sleeps, attempts=1).run(call)
    assert caught.value is error
    assert (len(call.calls), sleeps) == (1, [])


def test_the_budget_counts_the_time_the_first_attempt_took(sleeps: list[float]) -> None:
    """Budget 11.5 s. Without that time the waits 1, 2, 4 s fit and the 8 s one does not
    (four calls); with a first attempt of 9 s, 9 + 1 fits and 9 + 1 + 2 does not (two)."""
    quick = Script(*[Unavailable("503")] * 10)
    with pytest.raises(Unavailable):
        policy(sleeps, attempts=10, budget_seconds=11.5).run(quick)
    assert (len(quick.calls), sleeps) == (4, [1.0, 2.0, 4.0])

    clock, slow_sleeps = FakeClock(), list[float]()
    slow = Script(*[Unavailable("503")] * 10)

    def nine_seconds_first() -> None:
        if not slow.calls:
            clock.now += 9.0
        slow()

    retry = policy(slow_sleeps, attempts=10, budget_seconds=11.5, clock=clock)
    with pytest.raises(Unavailable):
        retry.run(nine_seconds_first)
    assert (len(slow.calls), slow_sleeps) == (2, [1.0])


def test_a_budget_given_per_call_replaces_the_configured_one(sleeps: list[float]) -> None:
    """Budget 2.5 s for this call: the 1 s wait fits, the following 2 s one does not."""
    call = Script(*[Unavailable("503")] * 4)
    with pytest.raises(Unavailable):
        policy(sleeps, budget_seconds=20.0).run(call, budget_seconds=2.5)
    assert (len(call.calls), sleeps) == (2, [1.0])


def test_the_wait_requested_by_the_first_failure_is_honoured(
    sleeps: list[float], retrying_lines: Callable[[], list[Any]]
) -> None:
    """Retry-After 7 s on attempt 1 replaces the jittered 1 s wait, uncapped by max_wait."""
    call = Script(Unavailable("429", retry_after=7.0), "done")
    retry = policy(sleeps, max_wait=2.0, requested_wait=requested)
    assert retry.run(call) == "done"
    assert sleeps == [7.0]
    [line] = retrying_lines()
    assert (line.attempt, line.wait_seconds) == (1, 7.0)


def test_a_requested_wait_beyond_the_budget_ends_at_the_first_attempt(
    sleeps: list[float], retrying_lines: Callable[[], list[Any]]
) -> None:
    """No sleeping past the budget: the first error is raised at once, nothing logged."""
    error = Unavailable("429", retry_after=30.0)
    call = Script(error, "never")
    with pytest.raises(Unavailable) as caught:
        policy(sleeps, requested_wait=requested).run(call)
    assert caught.value is error
    assert (len(call.calls), sleeps, retrying_lines()) == (1, [], [])


def test_retry_on_decides_what_is_retried(sleeps: list[float]) -> None:
    """Only the errors named are retried; another TransientError is raised at once."""
    call = Script(TransientError("other"), "done")
    with pytest.raises(TransientError, match="other"):
        policy(sleeps, retry_on=Unavailable).run(call)
    assert len(call.calls) == 1

    call = Script(Unavailable("503"), "done")
    assert policy(sleeps, retry_on=Unavailable).run(call) == "done"
    assert len(call.calls) == 2


SCENARIOS = {
    "success": ["ok"],
    "one failure": ["fail", "ok"],
    "three failures": ["fail", "fail", "fail", "ok"],
    "exhausted": ["fail"] * 6,
    "permanent after a failure": ["fail", "permanent"],
    "requested wait": ["slow", "ok"],
    "requested wait past the budget": ["fail", "fail", "too slow", "ok"],
}


def outcomes(names: list[str]) -> list[Any]:
    made: dict[str, Callable[[int], Any]] = {
        "ok": lambda n: f"result {n}",
        "fail": lambda n: Unavailable(f"503 #{n}"),
        "slow": lambda n: Unavailable(f"429 #{n}", retry_after=5.0),
        "too slow": lambda n: Unavailable(f"429 #{n}", retry_after=19.0),
        "permanent": lambda n: PermanentError("ga4_rejected", f"#{n}"),
    }
    return [made[name](n) for n, name in enumerate(names)]


@pytest.mark.parametrize("attempts", [1, 2, 4])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_run_makes_the_decisions_a_retrying_built_per_call_makes(
    scenario: str, attempts: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Same calls, waits, log lines and outcome as the ``Retrying`` built per call."""
    caplog.set_level(logging.WARNING, logger=LOGGER.name)
    options: dict[str, Any] = {
        "attempts": attempts,
        "budget_seconds": 20.0,
        "logger": LOGGER,
        "initial_wait": 1.0,
        "max_wait": 8.0,
        "uniform": highest,
        "requested_wait": requested,
    }

    def observe(run: Callable[[Script, list[float]], Any]) -> tuple[Any, ...]:
        caplog.clear()
        call, waits = Script(*outcomes(SCENARIOS[scenario])), list[float]()
        outcome: tuple[Any, ...]
        try:
            outcome = ("returned", run(call, waits))
        except Exception as error:  # noqa: BLE001 - the outcome compared, whatever it is
            outcome = ("raised", type(error), str(error))
        lines = [
            tuple(getattr(r, name) for name in ("attempt", "wait_seconds", "error", "event_id"))
            for r in caplog.records
            if getattr(r, "event", None) == "retrying"
        ]
        return outcome, len(call.calls), waits, lines

    fields = {"event_id": "e-9"}

    def per_call(call: Script, waits: list[float]) -> Any:
        retrying = tenacity.Retrying(
            stop=_stop(options["attempts"], options["budget_seconds"]),
            before_sleep=retry_log(LOGGER, fields),
            **_options(
                initial_wait=options["initial_wait"],
                max_wait=options["max_wait"],
                retry_on=TransientError,
                requested_wait=requested,
                sleep=waits.append,
                uniform=highest,
            ),
        )
        return retrying(call)

    built_per_call = observe(per_call)
    direct_first = observe(
        lambda call, waits: RetryPolicy(**options, sleep=waits.append).run(call, log_fields=fields)
    )
    assert direct_first == built_per_call
