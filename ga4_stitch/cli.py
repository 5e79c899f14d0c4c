"""The ``ga4-stitch`` command line: one subcommand per entry of ``COMMANDS``.

A subcommand is a ``Command``: its name, a one-line help, ``configure`` (adds its
arguments to its parser) and ``handler`` (does the work, returns the exit code). Handlers
raise ``UsageError`` for input the user can fix: it is reported as one line on stderr
with exit code 2. Progress and summaries go to stderr, so stdout stays a clean NDJSON or
JSON stream that can be piped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ga4_stitch.pipeline import LocalPipeline, PipelineInfo
    from ga4_stitch.replay import ReplaySummary


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
    truth = _load_truth(args.truth)
    sent = _load_sent(args.sent)
    progress(f"scoring {len(sent)} SENT lines against {len(truth)} truth records")
    if args.json:
        print(json.dumps(_scored_json(truth, sent), indent=2))
    else:
        print(_scored(truth, sent))
    return 0


def _scored(truth: dict[str, dict[str, Any]], sent: Sequence[dict[str, Any]]) -> str:
    """The score, then its GA4 report-parity table."""
    from ga4_stitch.parity import format_parity, parity
    from ga4_stitch.score import format_score, score

    table = format_parity(parity(truth, sent))
    return f"{format_score(score(truth, sent))}\n\nGA4 report parity\n{table}"


def _scored_json(
    truth: dict[str, dict[str, Any]], sent: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The score's fields plus ``parity``: ``{dimension: {matched, compared, share}}``."""
    from ga4_stitch.parity import parity
    from ga4_stitch.score import score

    return {**score(truth, sent).to_json(), "parity": parity(truth, sent).to_json()}


# --------------------------------------------------------------------------- local pipeline

STATE_DIR = Path(".ga4-stitch")
STATE_FILE = "run.json"


def _add_state_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=STATE_DIR,
        help=f"where run keeps its state file, logs and GA4 record (default {STATE_DIR})",
    )


def _add_attach_argument(parser: argparse.ArgumentParser) -> None:
    _add_state_arguments(parser)
    parser.add_argument(
        "--pipeline-from",
        type=Path,
        metavar="FILE",
        help="the state file of a running `ga4-stitch run` (default: STATE_DIR/run.json if "
        "its owner is alive)",
    )


def _state_dir(path: Path) -> Path:
    """The state directory, created with a .gitignore so a clone stays clean."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    return path


def _attached(args: argparse.Namespace) -> PipelineInfo | None:
    """The running pipeline named by ``--pipeline-from``, else the state directory's."""
    from ga4_stitch.pipeline import PipelineError, PipelineInfo

    if args.pipeline_from is not None:
        try:
            return PipelineInfo.load(args.pipeline_from)
        except PipelineError as exc:
            raise UsageError(str(exc)) from exc
    default = args.state_dir / STATE_FILE
    if default.exists():
        try:
            return PipelineInfo.load(default)
        except PipelineError as exc:
            progress(f"ignoring {default}: {exc}")
    return None


def _describe(info: PipelineInfo, state_file: Path) -> list[str]:
    topics, subscriptions = info.topics, info.subscriptions
    path = "/v1/events:ingest" if info.destination == "data_manager" else "/mp/collect"
    return [
        f"Pub/Sub emulator   {info.pubsub_host}   (project {info.project})",
        f"Firestore emulator {info.firestore_host}",
        f"resolve function   {info.functions['resolve']}   log {info.logs['resolve']}",
        f"forward function   {info.functions['forward']}   log {info.logs['forward']}",
        f"local GA4          {info.ga4_url}{path}   record {info.ga4_record}"
        if info.ga4_record
        else f"GA4 endpoint       {info.ga4_url}{path}   (--ga4-endpoint, not recorded)",
        f"destination        {info.destination}",
        f"topic {topics['raw_events']} -> push {subscriptions['resolve']} -> resolve",
        f"topic {topics['enriched']} -> push {subscriptions['forward']} -> forward",
        f"BigQuery export stand-ins: pull {subscriptions['enriched_events']}, "
        f"{subscriptions['identity_links']}",
        f"dead letters: pull {subscriptions['resolve_dead_letter']}, "
        f"{subscriptions['forward_dead_letter']}",
        f"state file         {state_file}",
        "in another shell:",
        f"  export PUBSUB_EMULATOR_HOST={info.pubsub_host} "
        f"FIRESTORE_EMULATOR_HOST={info.firestore_host} GOOGLE_CLOUD_PROJECT={info.project}",
        "  .venv/bin/ga4-stitch replay EVENTS.ndjson --out SENT.ndjson",
    ]


def _ordering_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ordering-key",
        choices=("canonical", "received"),
        default="canonical",
        help="canonical: the resolver's client, as the GTM SC tag keys it, following _gl "
        "hops (default); received: client_id exactly as sent (docs/local-pipeline.md)",
    )


def _destination_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--destination",
        choices=("measurement_protocol", "data_manager"),
        default=None,
        help="how the forwarder reaches GA4: the Measurement Protocol (default) or the Data "
        "Manager API; the local GA4 endpoint serves both (docs/forwarding.md)",
    )


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo", action="store_true", help="publish a simulated stream, summarise, exit"
    )
    parser.add_argument(
        "--people", type=_positive_int, default=40, help="people simulated by --demo (40)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of --demo's stream (1)")
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="keep what already-running emulators hold (default: start with empty Firestore)",
    )
    parser.add_argument(
        "--ga4-endpoint",
        metavar="URL",
        help="forward to this Measurement Protocol host instead of the local GA4 endpoint "
        "(replay then cannot see what reached it)",
    )
    _destination_argument(parser)
    _ordering_argument(parser)
    _add_state_arguments(parser)


def _run(args: argparse.Namespace) -> int:
    from ga4_stitch.pipeline import LocalPipeline, PipelineError, PipelineInfo, PipelineOptions

    state_file = args.state_dir / STATE_FILE
    if state_file.exists():
        with contextlib.suppress(PipelineError):
            running = PipelineInfo.load(state_file)
            raise UsageError(f"a pipeline already runs (pid {running.pid}, {state_file})")
    if args.ga4_endpoint and not args.ga4_endpoint.startswith(("http://", "https://")):
        raise UsageError(f"--ga4-endpoint {args.ga4_endpoint!r} is not an http(s) URL")
    if args.ga4_endpoint and args.demo:
        raise UsageError("--demo needs the local GA4 endpoint; leave out --ga4-endpoint")
    options = PipelineOptions(
        work_dir=_state_dir(args.state_dir) / "run",
        keep_data=args.keep_data,
        ga4_endpoint=args.ga4_endpoint,
        destination=args.destination or "measurement_protocol",
    )
    try:
        with LocalPipeline(options, report=progress) as pipeline:
            pipeline.save_state(state_file)
            for line in _describe(pipeline.info, state_file):
                progress(line)
            if args.demo:
                return _demo(pipeline, args)
            progress("running; Ctrl-C stops everything")
            return _watch(pipeline)
    except PipelineError as exc:
        progress(f"ga4-stitch run: error: {exc}")
        return 1
    except KeyboardInterrupt:
        progress("stopped")
        return 130 if args.demo else 0
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(state_file.read_text(encoding="utf-8")).get("pid") == os.getpid():
                state_file.unlink()


def _watch(pipeline: LocalPipeline) -> int:
    while True:
        time.sleep(0.5)
        dead = pipeline.dead_processes()
        if dead:
            for name in dead:
                progress(f"{name} exited on its own; last lines of its log:")
                progress(pipeline.log_tail(name))
            progress(f"stopping: {', '.join(dead)} exited on its own")
            return 1


def _demo(pipeline: LocalPipeline, args: argparse.Namespace) -> int:
    from ga4_stitch.replay import replay
    from ga4_stitch.simulate import SimulationConfig, simulate

    work = pipeline.options.work_dir
    config = SimulationConfig(
        people=args.people, seed=args.seed, start_micros=time.time_ns() // 1000
    )
    result = simulate(config)
    events = work / "demo-events.ndjson"
    with events.open("w", encoding="utf-8") as stream:
        write_ndjson(result.deliveries, stream)
    progress(f"simulated {args.people} people: {len(result.deliveries)} deliveries in {events}")
    summary = replay(
        pipeline, events, work / "demo-sent.ndjson", report=progress, ordering_key=args.ordering_key
    )
    _remember_export(args.state_dir, summary)
    print(f"replay of {events}\n{summary.format()}\n")
    sent = [json.loads(line) for line in Path(summary.out_path).read_text().splitlines()]
    truth = {record.event_id: record.to_json() for record in result.truth}
    print(f"score against the simulation's truth\n{_scored(truth, sent)}")
    return 1 if summary.missing else 0


def _configure_replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("events", type=Path, help="NDJSON of raw events, one JSON object a line")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="SENT NDJSON to write (and OUT.deadletter, and OUT.export/: the export that "
        "ga4-stitch warehouse reads)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="give up after this many seconds without an event reaching GA4 or a "
        "dead-letter topic (60)",
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="publish at most this many events a second"
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="keep Firestore's state (default: empty it first, or every event is a duplicate "
        "of the last replay)",
    )
    _ordering_argument(parser)
    parser.add_argument(
        "--truth",
        type=Path,
        help="truth NDJSON of simulate: also print the score and GA4 report parity",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    _destination_argument(parser)
    _add_attach_argument(parser)


def _replay(args: argparse.Namespace) -> int:
    from ga4_stitch.pipeline import LocalPipeline, PipelineError, PipelineOptions
    from ga4_stitch.replay import replay

    if not args.events.is_file():
        raise UsageError(f"{args.events}: no such file")
    if args.timeout <= 0 or (args.rate is not None and args.rate <= 0):
        raise UsageError("--timeout and --rate must be positive")
    truth = _load_truth(args.truth) if args.truth is not None else None
    options = {
        "timeout": args.timeout,
        "rate": args.rate,
        "ordering_key": args.ordering_key,
        "report": progress,
    }
    info = _attached(args)
    _check_destination(info, args.destination)
    try:
        if info is not None:
            progress(f"replaying through the running pipeline (pid {info.pid})")
            summary = replay(info, args.events, args.out, clear_state=not args.keep_data, **options)
        else:
            work = _state_dir(args.state_dir) / "replay"
            pipeline_options = PipelineOptions(
                work_dir=work,
                keep_data=args.keep_data,
                destination=args.destination or "measurement_protocol",
            )
            with LocalPipeline(pipeline_options, report=progress) as pipeline:
                info = pipeline.info
                summary = replay(pipeline, args.events, args.out, **options)
    except PipelineError as exc:
        progress(f"ga4-stitch replay: error: {exc}")
        return 1
    _remember_export(args.state_dir, summary)
    if summary.pipeline_lost:
        print(json.dumps(summary.to_json(), indent=2) if args.json else summary.format())
        progress(
            f"ga4-stitch replay: error: the pipeline was lost ({summary.pipeline_lost}); "
            f"the summary above is partial, {summary.out_path} holds what GA4 got until then"
        )
        return 1
    sent = _load_sent(Path(summary.out_path)) if truth is not None else []
    if args.json:
        output = summary.to_json()
        if truth is not None:
            output["score"] = _scored_json(truth, sent)
        print(json.dumps(output, indent=2))
    else:
        print(summary.format())
        if truth is not None:
            print(f"\nscore against {args.truth}\n{_scored(truth, sent)}")
    if summary.malformed_lines:
        lines = ", ".join(str(line) for line, _ in summary.malformed_lines[:20])
        progress(f"{len(summary.malformed_lines)} malformed input lines skipped: {lines}")
    if summary.missing:
        progress(
            f"ga4-stitch replay: error: {summary.missing} of {summary.distinct_events} events "
            f"neither reached GA4 nor a dead-letter topic (no progress for {args.timeout:g} s); "
            f"first: {', '.join(summary.missing_ids[:5])}; function logs: "
            f"{', '.join(info.logs.values())}"
        )
        return 1
    return 0


def _check_destination(info: PipelineInfo | None, destination: str | None) -> None:
    """A replay through a running pipeline takes the destination it was started with."""
    if info is not None and destination and destination != info.destination:
        raise UsageError(
            f"the running pipeline forwards through {info.destination}; start it with "
            f"ga4-stitch run --destination {destination}, or leave out --destination"
        )


def _remember_export(state_dir: Path, summary: ReplaySummary) -> None:
    """Make the replay's export ``ga4-stitch warehouse``'s default input."""
    from ga4_stitch.warehouse import remember_replay_export

    remember_replay_export(_state_dir(state_dir), Path(summary.export_path))
    rows = ", ".join(f"{table} {count}" for table, count in summary.exported.items())
    progress(f"export ({rows}) in {summary.export_path}: ga4-stitch warehouse builds on it")


def _load_truth(path: Path) -> dict[str, dict[str, Any]]:
    from ga4_stitch.score import InputFileError, load_truth

    try:
        return load_truth(path)
    except InputFileError as exc:
        raise UsageError(str(exc)) from exc


def _load_sent(path: Path) -> list[dict[str, Any]]:
    from ga4_stitch.score import InputFileError, load_sent

    try:
        return load_sent(path)
    except InputFileError as exc:
        raise UsageError(str(exc)) from exc


# --------------------------------------------------------------------------- inspect, erase


def _configure_state_query(parser: argparse.ArgumentParser, verb: str) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--client-id", help=f"{verb} one client (a GA4 client id)")
    target.add_argument("--user-id", help=f"{verb} one user and every client linked to them")
    parser.add_argument("--json", action="store_true", help="print JSON")
    _add_attach_argument(parser)


def _reader(args: argparse.Namespace) -> Any:
    """The ``StateAdmin`` of the running pipeline's Firestore, else of the one the
    environment names (``FIRESTORE_EMULATOR_HOST``, or a real ``GOOGLE_CLOUD_PROJECT``)."""
    from ga4_stitch.pipeline import PROJECT, client_environment
    from shared.bootstrap import state_admin
    from shared.errors import SettingsError
    from shared.settings import Settings

    info = _attached(args)
    environ = dict(os.environ)
    if info is not None:
        environ.update(GOOGLE_CLOUD_PROJECT=info.project, PII_HASH_SECRET=info.pii_hash_secret)
    elif environ.get("FIRESTORE_EMULATOR_HOST"):
        environ.setdefault("GOOGLE_CLOUD_PROJECT", PROJECT)
    elif not environ.get("GOOGLE_CLOUD_PROJECT"):
        raise UsageError(
            f"no running pipeline ({args.state_dir / STATE_FILE}), and neither "
            "FIRESTORE_EMULATOR_HOST nor GOOGLE_CLOUD_PROJECT is set"
        )
    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        raise UsageError(str(exc)) from exc
    if info is None:
        return state_admin(settings)
    with client_environment(info.project, info.pubsub_host, info.firestore_host):
        return state_admin(settings)


def _inspect(args: argparse.Namespace) -> int:
    from ga4_stitch.inspect import format_report
    from shared.services.inspect import client_report, user_report

    reader = _reader(args)
    if args.client_id is not None:
        report = client_report(reader, args.client_id)
    else:
        report = user_report(reader, args.user_id)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["found"] else 1


def _erase(args: argparse.Namespace) -> int:
    from shared.services.erase import erase_client, erase_user

    reader = _reader(args)
    if args.client_id is not None:
        erasure = erase_client(reader, args.client_id)
    else:
        erasure = erase_user(reader, args.user_id)
    if args.json:
        print(json.dumps({"deleted": erasure.deleted, "absent": erasure.absent}, indent=2))
    else:
        for path in erasure.deleted:
            print(f"deleted  {path}")
        for path in erasure.absent:
            print(f"absent   {path}")
        progress(f"erased {len(erasure.deleted)} documents")
    return 0


# --------------------------------------------------------------------------- redrive


def _configure_redrive(parser: argparse.ArgumentParser) -> None:
    from ga4_stitch.redrive import configure_parser

    configure_parser(parser)
    _add_attach_argument(parser)


def _redrive(args: argparse.Namespace) -> int:
    """Dead letters of the running pipeline, else of ``PUBSUB_EMULATOR_HOST``'s emulator,
    else of the real ``GOOGLE_CLOUD_PROJECT`` (docs/redrive.md)."""
    from ga4_stitch.redrive import RedriveSetupError, run_command

    try:
        return run_command(args, _attached(args), sys.stdout, progress)
    except RedriveSetupError as exc:
        raise UsageError(str(exc)) from exc


# --------------------------------------------------------------------------- warehouse


def _configure_warehouse(parser: argparse.ArgumentParser) -> None:
    from ga4_stitch.warehouse import configure

    configure(parser)


def _warehouse(args: argparse.Namespace) -> int:
    """The dbt models on DuckDB over an export (docs/warehouse.md)."""
    from ga4_stitch.warehouse import command

    try:
        return command(args, progress)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


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
    Command(
        "run",
        "the whole pipeline on the emulators until Ctrl-C (or, with --demo, one simulated run)",
        _configure_run,
        _run,
    ),
    Command(
        "replay",
        "publish raw events through the pipeline; write what reached GA4 and what was refused",
        _configure_replay,
        _replay,
    ),
    Command(
        "inspect",
        "show the stored identity and session state of a client or a user",
        lambda parser: _configure_state_query(parser, "show"),
        _inspect,
    ),
    Command(
        "erase",
        "delete a user's (or a client's) stored state: a GDPR erasure request",
        lambda parser: _configure_state_query(parser, "erase"),
        _erase,
    ),
    Command(
        "redrive",
        "publish dead letters again after their cause is fixed (or list them)",
        _configure_redrive,
        _redrive,
    ),
    Command(
        "warehouse",
        "build the warehouse models (dbt) on DuckDB over an export, print their summary",
        _configure_warehouse,
        _warehouse,
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
