"""The ``ga4-stitch`` command line: one subcommand per entry of ``COMMANDS``.

A subcommand is a ``Command``: its name, a one-line help, ``configure`` (adds its
arguments to its parser) and ``handler`` (does the work, returns the exit code). Handlers
raise ``UsageError`` for input the user can fix: it is reported as one line on stderr
with exit code 2. Progress and summaries go to stderr, so stdout stays a clean NDJSON or
JSON stream that can be piped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO


class UsageError(Exception):
    """Bad input the user can fix (a missing or malformed file, an impossible option)."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]


def progress(message: str) -> None:
    """One progress or summary line on stderr."""
    print(message, file=sys.stderr, flush=True)


def write_ndjson(rows: Sequence[dict[str, Any]], stream: TextIO) -> None:
    for row in rows:
        stream.write(json.dumps(row, separators=(",", ":")) + "\n")


# --------------------------------------------------------------------------- simulate


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _iso_micros(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _configure_simulate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=_positive_int, required=True, help="people to simulate")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--start",
        type=_iso_micros,
        dest="start_micros",
        metavar="ISO",
        help="events lie in the 48 h before this time (default: now)",
    )
    start.add_argument(
        "--start-micros", type=int, dest="start_micros", metavar="MICROS", help="same, Unix micros"
    )
    parser.add_argument("--truth", type=Path, help="write the ground truth NDJSON here")
    rates = parser.add_argument_group("delivery and feature rates")
    rates.add_argument(
        "--late-rate", type=_share, default=0.05, help="events delayed a little (0.05)"
    )
    rates.add_argument(
        "--late-max-seconds", type=float, default=180.0, help="their largest delay (180)"
    )
    rates.add_argument(
        "--very-late-rate", type=_share, default=0.01, help="events delayed a lot (0.01)"
    )
    rates.add_argument(
        "--very-late-max-seconds", type=float, default=7200.0, help="their largest delay (7200)"
    )
    rates.add_argument(
        "--duplicate-rate", type=_share, default=0.02, help="events redelivered (0.02)"
    )
    rates.add_argument(
        "--malformed-rate",
        type=_share,
        default=0.004,
        help="malformed events added, at least one of each defect unless 0 (0.004)",
    )
    rates.add_argument(
        "--hop-rate",
        type=_share,
        default=0.6,
        help="purchases paid on the second domain, where possible (0.6)",
    )
    rates.add_argument(
        "--shared-device-rate",
        type=_share,
        default=0.05,
        help="devices a second person also logs in on (0.05)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")


def _simulate(args: argparse.Namespace) -> int:
    from ga4_stitch.simulate import SimulationConfig, simulate

    if args.late_rate + args.very_late_rate > 1.0:
        raise UsageError("--late-rate plus --very-late-rate exceeds 1")
    if args.very_late_max_seconds < args.late_max_seconds:
        raise UsageError("--very-late-max-seconds is below --late-max-seconds")
    start_micros = args.start_micros
    if start_micros is None:
        start_micros = int(time.time() * 1_000_000)
    config = SimulationConfig(
        people=args.people,
        seed=args.seed,
        start_micros=start_micros,
        late_rate=args.late_rate,
        late_max_seconds=args.late_max_seconds,
        very_late_rate=args.very_late_rate,
        very_late_max_seconds=args.very_late_max_seconds,
        duplicate_rate=args.duplicate_rate,
        malformed_rate=args.malformed_rate,
        hop_rate=args.hop_rate,
        shared_device_rate=args.shared_device_rate,
    )
    step = max(1, args.people // 10)

    def report(done: int, total: int) -> None:
        if not args.quiet and (done % step == 0 or done == total):
            progress(f"simulated {done}/{total} people")

    result = simulate(config, report)
    write_ndjson(result.deliveries, sys.stdout)
    sys.stdout.flush()
    if args.truth is not None:
        try:
            with args.truth.open("w", encoding="utf-8") as truth:
                write_ndjson([record.to_json() for record in result.truth], truth)
        except OSError as exc:
            raise UsageError(f"cannot write {args.truth}: {exc.strerror or exc}") from exc
    if not args.quiet:
        progress(" ".join(f"{name}={count}" for name, count in result.stats.items()))
    return 0


# --------------------------------------------------------------------------- score


def _configure_score(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sent", type=Path, help="NDJSON, one line per event that reached GA4")
    parser.add_argument("--truth", type=Path, required=True, help="truth NDJSON of simulate")
    parser.add_argument("--json", action="store_true", help="print the score as JSON")


def _score(args: argparse.Namespace) -> int:
    from ga4_stitch.score import InputFileError, format_score, load_sent, load_truth, score

    try:
        truth = load_truth(args.truth)
        sent = load_sent(args.sent)
    except InputFileError as exc:
        raise UsageError(str(exc)) from exc
    progress(f"scoring {len(sent)} SENT lines against {len(truth)} truth records")
    result = score(truth, sent)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_score(result))
    return 0


COMMANDS: tuple[Command, ...] = (
    Command(
        "simulate",
        "write realistic raw events (NDJSON, delivery order) to stdout, with ground truth",
        _configure_simulate,
        _simulate,
    ),
    Command(
        "score",
        "compare the events that reached GA4 with a simulation's ground truth",
        _configure_score,
        _score,
    ),
)


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ga4-stitch",
        description="Server-side identity stitching and GA4 sessions: local tools.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        sub = subcommands.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(handler=command.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        progress(f"ga4-stitch {args.command}: error: {exc}")
        return 2
    except BrokenPipeError:
        # The reader went away (``| head``): silence the flush Python attempts at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
