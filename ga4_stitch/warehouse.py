"""The warehouse models (``warehouse/``, dbt) built locally on DuckDB.

The BigQuery export (``terraform/bigquery.tf``) holds one row per delivered message of the
enriched-events and identity-links topics: ``subscription_name``, ``message_id``,
``publish_time``, ``data`` (JSON) and ``attributes`` (JSON). Locally the same rows come
from an export directory (``enriched_events.ndjson`` and ``identity_links.ndjson``, one
row a line, ``publish_time`` as ISO 8601 UTC, ``data`` as the message text): the one a
``replay`` drained from the local pipeline's stand-ins for the export subscriptions
(``OUT.export``, the default input: ``last_replay_export``), or one made by running the
resolver in-process over raw events (``resolve_in_process``): the same service the
resolve function runs, on an in-memory state store, in delivery order.

They are loaded into a DuckDB file (schema ``ga4_stitch``, as the export dataset), and
``dbt build`` runs in a virtual environment of its own (``warehouse/.venv``, from
``warehouse/requirements.txt``): dbt-core pins a pathspec that the project's mypy cannot
share. The runner there calls dbt in-process (``dbtRunner``) and writes the results as
JSON. See docs/warehouse.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.adapters.memory import MemoryLinkEvidence, MemoryStateStore
from shared.domain.messages import OutgoingMessage

PROJECT_DIR = Path(__file__).resolve().parents[1] / "warehouse"
"""The dbt project."""
EXPORT_TABLES = ("enriched_events", "identity_links")
EXPORT_DATASET = "ga4_stitch"
"""DuckDB schema of the export tables: the dbt variable ``export_dataset``'s default."""
SUBSCRIPTIONS = {
    "enriched_events": "ga4-stitch-enriched-events-bigquery",
    "identity_links": "ga4-stitch-identity-links-bigquery",
}
"""The BigQuery subscriptions' names (terraform/bigquery.tf), written into each row."""
MODELS = ("stitched_events", "sessions", "users", "session_breakage")
LAST_REPLAY_EXPORT = "last-replay-export"
"""In the state directory: the path of the export directory the last ``replay`` wrote."""

Report = Callable[[str], None]


def _quiet(_: str) -> None:
    """A report that says nothing."""


# --------------------------------------------------------------------------- export rows


@dataclass(frozen=True)
class ExportRow:
    """One row of an export table, as the BigQuery subscription writes it."""

    subscription_name: str
    message_id: str
    publish_time_micros: int
    data: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        moment = datetime.fromtimestamp(self.publish_time_micros / 1_000_000, UTC)
        return {
            "subscription_name": self.subscription_name,
            "message_id": self.message_id,
            "publish_time": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "data": self.data,
            "attributes": dict(self.attributes),
        }


Export = dict[str, list[ExportRow]]
"""Rows by export table."""


class _ExportPublisher:
    """``Publisher`` that turns what the resolver publishes into export rows."""

    def __init__(self, topics: Mapping[str, str]) -> None:
        self.tables = {topic: table for table, topic in topics.items()}
        self.rows: Export = {table: [] for table in EXPORT_TABLES}
        self.now_micros = 0
        """The simulated arrival time; what is published now is published 1 ms later."""

    def publish_all(self, messages: Sequence[OutgoingMessage]) -> None:
        for message in messages:
            table = self.tables.get(message.topic)
            if table is None:
                continue  # dead letters are not exported
            rows = self.rows[table]
            rows.append(
                ExportRow(
                    subscription_name=SUBSCRIPTIONS[table],
                    message_id=f"{table[0]}{len(rows) + 1:09d}",
                    publish_time_micros=self.now_micros + 1000,
                    data=message.data.decode(),
                    attributes=dict(message.attributes),
                )
            )


def resolve_in_process(
    deliveries: Iterable[Mapping[str, Any]],
    *,
    environ: Mapping[str, str] | None = None,
) -> Export:
    """The export rows the pipeline would write for these raw events, in delivery order.

    Each delivery is published (as the GTM SC tag would) at the newest event time seen so
    far, a stand-in for arrival time; its enriched event and links are published 1 ms
    later. The resolver's settings come from ``environ`` (default: this environment), so
    ``LOGOUT_EVENTS`` or ``SESSION_TIMEOUT_MINUTES`` apply as they would to the function.
    """
    from shared.bootstrap import resolve_config
    from shared.services.resolve import ResolveRuntime
    from shared.settings import Settings

    source = os.environ if environ is None else environ
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "demo-ga4-stitch", **source})
    config = resolve_config(settings)
    publisher = _ExportPublisher(
        {"enriched_events": config.enriched_topic, "identity_links": config.identity_links_topic}
    )
    runtime = ResolveRuntime(
        config,
        MemoryStateStore(),
        publisher,
        clock=lambda: publisher.now_micros,
        link_evidence=MemoryLinkEvidence(),
    )
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # dead letters are expected; the export leaves them out
    try:
        for position, payload in enumerate(deliveries, start=1):
            event_time = payload.get("timestamp_micros")
            if isinstance(event_time, int) and not isinstance(event_time, bool):
                publisher.now_micros = max(publisher.now_micros, event_time)
            moment = datetime.fromtimestamp(publisher.now_micros / 1_000_000, UTC)
            runtime.handle(
                {
                    "message": {
                        "data": base64.b64encode(json.dumps(payload).encode()).decode(),
                        "messageId": f"r{position:09d}",
                        "publishTime": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    }
                }
            )
    finally:
        logging.disable(previous)
    return publisher.rows


def write_export(export: Export, directory: Path) -> dict[str, Path]:
    """One NDJSON file per export table in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for table in EXPORT_TABLES:
        path = directory / f"{table}.ndjson"
        with path.open("w", encoding="utf-8") as file:
            for row in export.get(table, []):
                file.write(json.dumps(row.to_json(), separators=(",", ":")) + "\n")
        paths[table] = path
    return paths


def remember_replay_export(state_dir: Path, export_dir: Path) -> None:
    """Record ``export_dir`` as the last replay's export (``ga4-stitch warehouse``'s
    default input)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / LAST_REPLAY_EXPORT).write_text(f"{export_dir.resolve()}\n", encoding="utf-8")


def last_replay_export(state_dir: Path) -> Path | None:
    """The export directory the last ``replay`` with this state directory wrote, if any."""
    try:
        text = (state_dir / LAST_REPLAY_EXPORT).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return Path(text) if text else None


def read_deliveries(path: Path) -> list[dict[str, Any]]:
    """Raw events, one JSON object a line; other lines are skipped (as replay skips them)."""
    deliveries = []
    with path.open(encoding="utf-8") as file:
        for line in file:
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                deliveries.append(value)
    return deliveries


# --------------------------------------------------------------------------- DuckDB


def load_export(database: Path, export_dir: Path, *, append: bool = False) -> dict[str, int]:
    """Load the export directory's files into ``database``; rows per table.

    The tables have the BigQuery export's columns and types (``data`` and ``attributes``
    JSON). Without ``append`` they are emptied first.
    """
    import duckdb

    counts = {}
    database.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(database)) as connection:
        connection.execute(f"create schema if not exists {EXPORT_DATASET}")
        for table in EXPORT_TABLES:
            name = f"{EXPORT_DATASET}.{table}"
            connection.execute(
                f"create table if not exists {name} (subscription_name varchar not null, "
                "message_id varchar not null, publish_time timestamp not null, data json, "
                "attributes json)"
            )
            if not append:
                connection.execute(f"delete from {name}")  # noqa: S608
            path = export_dir / f"{table}.ndjson"
            if path.is_file() and path.stat().st_size > 0:
                connection.execute(
                    f"insert into {name} select subscription_name, message_id, "  # noqa: S608
                    "cast(publish_time as timestamp), cast(data as json), "
                    "cast(attributes as json) from read_json(?, format = 'newline_delimited', "
                    "columns = {subscription_name: 'varchar', message_id: 'varchar', "
                    "publish_time: 'varchar', data: 'varchar', attributes: 'json'})",
                    [str(path)],
                )
            row = connection.execute(f"select count(*) from {name}").fetchone()  # noqa: S608
            counts[table] = int(row[0]) if row else 0
    return counts


def query(database: Path, sql: str, parameters: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of ``sql`` on the warehouse file, as dicts (read only)."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        cursor = connection.execute(sql, list(parameters))
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# --------------------------------------------------------------------------- dbt


class WarehouseError(Exception):
    """dbt could not be installed or run, or the build failed."""


def dbt_venv() -> Path:
    return Path(os.environ.get("WAREHOUSE_VENV") or PROJECT_DIR / ".venv")


def dbt_environment(report: Report = _quiet) -> Path:
    """The Python of dbt's virtual environment, created from warehouse/requirements.txt on
    first use and refreshed when that file changes."""
    venv = dbt_venv()
    requirements = PROJECT_DIR / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    if python.exists() and stamp.is_file() and stamp.read_text().strip() == digest:
        return python
    report(f"installing dbt into {venv} (warehouse/requirements.txt)")
    commands = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(requirements)],
    ]  # fmt: skip
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise WarehouseError(f"{' '.join(command[:4])} failed:\n{done.stderr[-2000:]}")
    stamp.write_text(digest + "\n")
    return python


@dataclass(frozen=True)
class DbtResult:
    """One dbt invocation: success, wall time and each node's status."""

    success: bool
    seconds: float
    nodes: list[dict[str, Any]]
    log: str

    def failed(self) -> list[dict[str, Any]]:
        return [n for n in self.nodes if n["status"] not in {"success", "pass", "skipped"}]

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for node in self.nodes:
            key = f"{node['resource_type']} {node['status']}"
            result[key] = result.get(key, 0) + 1
        return result


def run_dbt(
    arguments: Sequence[str],
    database: Path,
    *,
    work_dir: Path,
    variables: Mapping[str, Any] | None = None,
    report: Report = _quiet,
) -> DbtResult:
    """``dbt ARGUMENTS`` on the DuckDB file, in dbt's own environment; target and logs under
    ``work_dir`` (the project directory stays clean)."""
    python = dbt_environment(report)
    work_dir.mkdir(parents=True, exist_ok=True)
    result_path = work_dir / "dbt-result.json"
    result_path.unlink(missing_ok=True)
    command = [
        str(python), str(PROJECT_DIR / "run_dbt.py"), str(result_path), *arguments,
        "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
        "--target", "duckdb",
    ]  # fmt: skip
    if variables:
        command += ["--vars", json.dumps(dict(variables))]
    environment = {
        **os.environ,
        "WAREHOUSE_DUCKDB_PATH": str(database.resolve()),
        "DBT_TARGET_PATH": str((work_dir / "target").resolve()),
        "DBT_LOG_PATH": str((work_dir / "logs").resolve()),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_NO_VERSION_CHECK": "true",
        "DO_NOT_TRACK": "1",
    }
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env=environment, cwd=work_dir
    )
    seconds = time.monotonic() - started
    if not result_path.is_file():
        raise WarehouseError(f"dbt did not run:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    result = json.loads(result_path.read_text())
    return DbtResult(bool(result["success"]), seconds, list(result["nodes"]), done.stdout)


# --------------------------------------------------------------------------- summary


def summary(database: Path) -> dict[str, Any]:
    """The headline figures of the built models."""
    stitched = query(
        database,
        "select count(*) as events, count(user_id) as with_user_id, "
        "count(stitched_user_id) as with_stitched_user_id, "
        "sum(case when stitched_user_source = 'backward' then 1 else 0 end) as restitched, "
        "count(distinct client_id) as clients from stitched_events",
    )[0]
    sessions = query(
        database,
        "select count(*) as sessions, sum(case when engaged then 1 else 0 end) as engaged, "
        "count(stitched_user_id) as with_stitched_user, count(user_id) as with_user_id, "
        "avg(duration_seconds) as average_duration_seconds from sessions",
    )[0]
    users = query(database, "select count(*) as users, sum(clients) as clients from users")[0]
    breakage = query(
        database,
        "select sum(server_sessions) as server_sessions, sum(split_sessions) as split, "
        "sum(broken_sessions) as broken, sum(browser_sessions) as browser_sessions, "
        "sum(merged_browser_sessions) as merged from session_breakage",
    )[0]
    by_browser = query(
        database,
        "select browser, sum(server_sessions) as server_sessions, "
        "sum(broken_sessions) as broken, "
        "sum(broken_sessions) * 1.0 / nullif(sum(server_sessions), 0) as breakage_rate "
        "from session_breakage group by browser order by server_sessions desc, browser",
    )
    by_day = query(
        database,
        "select cast(breakage_date as varchar) as day, sum(server_sessions) as server_sessions, "
        "sum(broken_sessions) * 1.0 / nullif(sum(server_sessions), 0) as breakage_rate "
        "from session_breakage group by breakage_date order by breakage_date",
    )
    sources = query(
        database,
        "select source, medium, count(*) as sessions, "
        "sum(case when engaged then 1 else 0 end) as engaged "
        "from sessions group by source, medium order by sessions desc, source limit 8",
    )
    server = breakage["server_sessions"] or 0
    browser = breakage["browser_sessions"] or 0
    return {
        "stitched_events": stitched,
        "sessions": sessions,
        "users": users,
        "session_breakage": {
            **breakage,
            "split_rate": (breakage["split"] or 0) / server if server else None,
            "merge_rate": (breakage["merged"] or 0) / browser if browser else None,
            "breakage_rate": (breakage["broken"] or 0) / server if server else None,
        },
        "breakage_by_browser": by_browser,
        "breakage_by_day": by_day,
        "top_sources": sources,
    }


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    return "-" if value is None else str(value)


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    names = list(rows[0])
    cells = [[_cell(row[name]) for name in names] for row in rows]
    widths = [max(len(name), *(len(row[i]) for row in cells)) for i, name in enumerate(names)]
    lines = ["  ".join(name.ljust(width) for name, width in zip(names, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def format_summary(figures: Mapping[str, Any]) -> str:
    names = ("stitched_events", "sessions", "users", "session_breakage")
    parts = [f"{name}\n{_table([figures[name]])}" for name in names]
    parts.append(f"breakage by browser\n{_table(figures['breakage_by_browser'])}")
    parts.append(f"breakage by day\n{_table(figures['breakage_by_day'])}")
    parts.append(f"sessions by source / medium\n{_table(figures['top_sources'])}")
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- command line


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ga4-stitch warehouse``."""
    parser.add_argument(
        "events",
        type=Path,
        nargs="?",
        help="raw events NDJSON: the export is made by running the resolver in-process over "
        "it (default: the export the last replay drained from the pipeline, see --export)",
    )
    parser.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="an export directory (enriched_events.ndjson, identity_links.ndjson), such as "
        "OUT.export of `ga4-stitch replay EVENTS --out OUT`; default: the last replay's "
        f"(recorded in STATE_DIR/{LAST_REPLAY_EXPORT}), else STATE_DIR/warehouse/export from "
        "the last run of this command with EVENTS",
    )
    parser.add_argument(
        "--database",
        type=Path,
        help="the DuckDB file (default STATE_DIR/warehouse/warehouse.duckdb)",
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="add the export to what the database holds and run the models incrementally "
        "(default: load it afresh and rebuild every model)",
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a dbt variable, e.g. stitch_probabilistic_links=true (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".ga4-stitch"),
        help="where the export and the DuckDB file go (default .ga4-stitch)",
    )


def _variables(items: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items:
        name, separator, text = item.partition("=")
        if not separator or not name:
            raise ValueError(f"--var {item!r} is not NAME=VALUE")
        try:
            result[name] = json.loads(text)
        except json.JSONDecodeError:
            result[name] = text
    return result


def command(args: argparse.Namespace, report: Report) -> int:
    """``ga4-stitch warehouse``: export (given, the last replay's or made in-process), load,
    dbt build, summary. Raises ``ValueError`` for bad input."""
    home = args.state_dir / "warehouse"
    export_dir = args.export or home / "export"
    if args.events is None and args.export is None:
        replayed = last_replay_export(args.state_dir)
        if replayed is not None:
            export_dir = replayed
            report(f"using the export of the last replay: {export_dir}")
        elif (export_dir / f"{EXPORT_TABLES[0]}.ndjson").is_file():
            report(f"no replay recorded in {args.state_dir}; using {export_dir}")
    database = args.database or home / "warehouse.duckdb"
    variables = _variables(args.var)
    if args.events is not None:
        if not args.events.is_file():
            raise ValueError(f"{args.events}: no such file")
        deliveries = read_deliveries(args.events)
        report(f"resolving {len(deliveries)} deliveries of {args.events} in-process")
        export = resolve_in_process(deliveries)
        write_export(export, export_dir)
        report(f"export written to {export_dir}")
    elif not all((export_dir / f"{table}.ndjson").is_file() for table in EXPORT_TABLES):
        raise ValueError(
            f"no export in {export_dir}: replay a stream first (ga4-stitch replay EVENTS "
            "--out OUT writes OUT.export), name an export directory (--export DIR) or raw "
            "events to resolve in-process (ga4-stitch warehouse EVENTS.ndjson)"
        )
    args.state_dir.mkdir(parents=True, exist_ok=True)
    ignore = args.state_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    counts = load_export(database, export_dir, append=args.incremental)
    report(f"loaded {counts} into {database}")
    arguments = ["build"] if args.incremental else ["build", "--full-refresh"]
    try:
        result = run_dbt(arguments, database, work_dir=home, variables=variables, report=report)
    except WarehouseError as exc:
        report(f"ga4-stitch warehouse: error: {exc}")
        return 1
    report(
        f"dbt build: {'ok' if result.success else 'FAILED'} in {result.seconds:.1f} s "
        f"({', '.join(f'{k} {v}' for k, v in sorted(result.counts().items()))})"
    )
    if not result.success:
        for node in result.failed():
            report(f"  {node['resource_type']} {node['name']}: {node['status']} {node['message']}")
        report(f"dbt log: {home / 'logs' / 'dbt.log'}")
        return 1
    figures = summary(database)
    if args.json:
        print(json.dumps({**figures, "database": str(database)}, indent=2, default=str))
    else:
        print(format_summary(figures))
        print(f"\nDuckDB file: {database.resolve()}  (models: {', '.join(MODELS)})")
    return 0
