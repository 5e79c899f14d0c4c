"""The whole pipeline on this machine, for the duration of a ``with`` block.

``LocalPipeline`` starts (or attaches to) the Pub/Sub and Firestore emulators, creates the
topics and subscriptions ``terraform/pubsub.tf`` creates in the cloud, runs ``resolve`` and
``forward`` under functions-framework as separate processes, and serves the local GA4
endpoint in a thread (or hands the functions another ``ga4_endpoint``). ``info`` says
where everything listens; ``PipelineInfo.save`` writes it as the state file other
commands attach to.

Push delivery is not the emulator's: its push loop ignores the retry backoff and stops for
good after its first dead letter. The two function subscriptions are pull subscriptions on
the emulator, and a ``ga4_stitch.delivery.PushLoop`` per function pushes to it the way the
production push subscription does, with the ``DeliveryPolicy`` (ordering per key, backoff,
ack deadline, attempts, dead letters with Pub/Sub's attributes).

Functions are supervised as Cloud Run supervises instances: one that exits is started
again on the same port, with a growing pause (``RESTART_DELAYS``), and reported with the
last lines of its log; a function's worker that functions-framework replaces is reported
too. Only a lost emulator ends the pipeline (``dead_processes``).

Invariant: every process the pipeline starts runs in its own process group and is stopped
(SIGTERM, then SIGKILL) when the block ends, whatever ends it: a normal exit, an
exception, Ctrl-C or SIGTERM. Signals are ignored while stopping, so a second Ctrl-C cannot
leave half of it running; the exit then scans ``/proc`` for any process left in those
groups (gcloud's Java children included) and raises ``OrphanProcessError`` naming them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from ga4_stitch.delivery import (
    EmulatorDeadLetters,
    EmulatorSource,
    HttpPusher,
    PushLoop,
    RetryPolicy,
)
from ga4_stitch.emulators import (
    HOST_VARIABLES,
    Emulator,
    clear_firestore,
    free_port,
    log_tail,
    spawn,
    start_emulator,
    stop_process_group,
    wait_for_port,
)
from ga4_stitch.ga4_endpoint import LocalGa4
from shared.settings import Topics

PROJECT = "demo-ga4-stitch"
LOCAL_MEASUREMENT_ID = "G-LOCAL00001"
LOCAL_PROPERTY_ID = "123456789"
"""The demo GA4 property the local stream belongs to (the Data Manager API's destination)."""
MEASUREMENT_PROTOCOL = "measurement_protocol"
DATA_MANAGER = "data_manager"
DESTINATIONS = (MEASUREMENT_PROTOCOL, DATA_MANAGER)
"""How the forwarder reaches GA4 (``GA4_DESTINATION``): both are served by the local GA4
endpoint."""
LOCAL_SECRETS = {
    "GA4_API_SECRET": "local-secret",
    "LINK_TOKEN_SECRET": "local-link-token-secret-0001",
    "PII_HASH_SECRET": "local-pii-hash-secret-00001",
}
"""Demo values for the local functions only; never a deployment's secrets."""
FUNCTIONS = ("resolve", "forward")
FUNCTION_THREADS = 32
"""functions-framework's ``THREADS`` for both functions: deliveries served at once, as
Terraform sets it to each function's concurrency, so concurrent deliveries can share a
Firestore request or a Data Manager request (more than the push workers, as Cloud Run's
concurrency is more than one delivery at a time)."""
MAIN = Path(__file__).resolve().parent.parent / "functions" / "main.py"
_ENVIRONMENT_LOCK = threading.Lock()
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Pause before the n-th restart of a function in a row (the last one repeats); a function
that stayed up for ``STABLE_SECONDS`` starts again from the first."""
STABLE_SECONDS = 60.0


class PipelineError(RuntimeError):
    """The local pipeline could not start (a missing tool, a process that died)."""


class OrphanProcessError(PipelineError):
    """A process the pipeline started was still alive after it stopped everything."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """Push subscription settings; defaults are ``terraform/variables.tf``'s (a test
    compares them), which stay the one description of the production policy."""

    ack_deadline_seconds: int = 60
    minimum_backoff_seconds: int = 10
    maximum_backoff_seconds: int = 600
    max_delivery_attempts: int = 10

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            ack_deadline_seconds=self.ack_deadline_seconds,
            minimum_backoff_seconds=self.minimum_backoff_seconds,
            maximum_backoff_seconds=self.maximum_backoff_seconds,
            max_delivery_attempts=self.max_delivery_attempts,
        )


@dataclass(frozen=True)
class PipelineOptions:
    work_dir: Path
    """Logs and the GA4 record go here."""
    project: str = PROJECT
    measurement_id: str = LOCAL_MEASUREMENT_ID
    function_env: Mapping[str, str] = field(default_factory=dict)
    """Extra settings for both functions (``SESSION_TIMEOUT_MINUTES``, ``BOT_MODE``...)."""
    keep_data: bool = False
    """Keep what an attached Firestore emulator holds (default: start empty)."""
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    startup_timeout: float = 90.0
    pubsub_host: str | None = None
    """An emulator already running (default: ``PUBSUB_EMULATOR_HOST``, else start one)."""
    firestore_host: str | None = None
    emulators_from_environment: bool = True
    """Use the emulators ``PUBSUB_EMULATOR_HOST`` / ``FIRESTORE_EMULATOR_HOST`` name."""
    ga4_endpoint: str | None = None
    """Where the forwarder sends (``GA4_ENDPOINT``); None: the local GA4 endpoint."""
    push_workers: int = 24
    """Pushes in flight at once per function subscription (different ordering keys)."""
    destination: str = MEASUREMENT_PROTOCOL
    """``measurement_protocol`` or ``data_manager``: the forwarder's ``GA4_DESTINATION``.
    With ``data_manager`` the forward function also gets ``GA4_PROPERTY_ID`` (the demo
    property) and ``DATA_MANAGER_ENDPOINT`` (the GA4 endpoint, which serves the Data
    Manager API's ingest method too)."""

    export: bool = True
    """Keep the BigQuery export's stand-ins (``EXPORT_ROLES``), which ``replay`` drains
    into ``SENT.export/``; False mirrors a deployment without ``enable_bigquery_export``
    (Terraform's default), whose Pub/Sub fans each enriched event out to one subscription."""

    def __post_init__(self) -> None:
        if self.destination not in DESTINATIONS:
            raise ValueError(f"destination must be one of {DESTINATIONS}, not {self.destination!r}")


EXPORT_ROLES = ("enriched_events", "identity_links")
"""Subscription roles standing in for the BigQuery export, named as its tables are."""


def subscription_names(topics: Topics) -> dict[str, str]:
    """Role -> subscription name, as ``terraform/pubsub.tf`` names them (plus a local pull
    subscription on enriched-events and one on identity-links, standing in for the
    BigQuery export's subscriptions: ``EXPORT_ROLES``)."""
    return {
        "resolve": "ga4-stitch-resolve",
        "forward": "ga4-stitch-forward",
        "resolve_dead_letter": f"{topics.resolve_dead_letter}-pull",
        "forward_dead_letter": f"{topics.forward_dead_letter}-pull",
        "enriched_events": f"{topics.enriched}-pull",
        "identity_links": f"{topics.identity_links}-pull",
    }


@dataclass(frozen=True)
class PipelineInfo:
    """Where a running pipeline listens: what ``replay``, ``inspect`` and ``erase`` need."""

    project: str
    pubsub_host: str
    firestore_host: str
    functions: Mapping[str, str]
    ga4_url: str
    ga4_record: str
    logs: Mapping[str, str]
    topics: Mapping[str, str]
    subscriptions: Mapping[str, str]
    measurement_id: str
    pii_hash_secret: str
    pid: int
    """The process that owns the pipeline (``ga4-stitch run``)."""
    process_groups: list[int]
    """Process groups it started (emulators, functions): none must outlive it."""
    destination: str = MEASUREMENT_PROTOCOL
    """How the forwarder reaches GA4 (``PipelineOptions.destination``)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PipelineInfo:
        """A state file's pipeline; a field written by a later version than the file's
        (one with a default) takes its default."""
        optional = {"destination"}
        return cls(
            **{
                name: value[name]
                for name in cls.__dataclass_fields__
                if name not in optional or name in value
            }
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> PipelineInfo:
        """The state file's pipeline; ``PipelineError`` if unreadable or its owner is gone."""
        try:
            info = cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PipelineError(f"{path} does not describe a pipeline: {exc}") from exc
        if not process_alive(info.pid):
            raise PipelineError(f"{path} names process {info.pid}, which is not running")
        return info


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``pgid``, from ``/proc``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] not in {"Z", "X"}:
            members.append(int(entry.name))
    return members


def wait_group_gone(pgid: int, timeout: float) -> list[int]:
    """Poll until no live process is left in the group (a killed process takes a moment to
    die); the members still alive when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while (members := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return members


@contextlib.contextmanager
def client_environment(project: str, pubsub_host: str, firestore_host: str) -> Iterator[None]:
    """The emulator variables the Google client libraries read while building a client,
    set only for the duration of the block (the process's environment is restored)."""
    wanted = {
        "PUBSUB_EMULATOR_HOST": pubsub_host,
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "GOOGLE_CLOUD_PROJECT": project,
    }
    with _ENVIRONMENT_LOCK:
        saved = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _check_listening(host: str, what: str) -> None:
    name, _, port = host.rpartition(":")
    try:
        with socket.create_connection((name or "127.0.0.1", int(port)), timeout=2.0):
            return
    except (OSError, ValueError) as exc:
        raise PipelineError(f"nothing answers at {host}, given for {what}: {exc}") from exc


def functions_framework_command() -> str:
    beside = Path(sys.executable).with_name("functions-framework")
    found = str(beside) if beside.exists() else shutil.which("functions-framework")
    if not found:
        raise PipelineError(
            "functions-framework is not installed (pip install -r requirements.txt)"
        )
    return found


class LocalPipeline:
    """See the module docstring. ``info`` is valid inside the ``with`` block."""

    def __init__(self, options: PipelineOptions, report: Callable[[str], None] | None = None):
        self.options = options
        self.topics = Topics()
        self.subscriptions = {
            role: name
            for role, name in subscription_names(self.topics).items()
            if options.export or role not in EXPORT_ROLES
        }
        self._report = report or (lambda _: None)
        self._emulators: dict[str, Emulator] = {}
        self._hosts: dict[str, str] = {}
        self._functions: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self._function_lock = threading.Lock()
        self._loops: dict[str, PushLoop] = {}
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._state_file: Path | None = None
        self._restarts: dict[str, int] = {}
        self._streak: dict[str, int] = {}
        self._ga4_url = ""
        self._ga4: LocalGa4 | None = None
        self._signals: dict[signal.Signals, Any] = {}
        self._info: PipelineInfo | None = None

    @property
    def info(self) -> PipelineInfo:
        if self._info is None:
            raise PipelineError("the pipeline is not running")
        return self._info

    @property
    def process_groups(self) -> list[int]:
        """Process group ids of every process this pipeline runs now."""
        started = [e.process.pid for e in self._emulators.values()]
        with self._function_lock:
            return started + [process.pid for process, _ in self._functions.values()]

    @property
    def restarts(self) -> dict[str, int]:
        """Restarts of each function so far."""
        return dict(self._restarts)

    def function_pid(self, name: str) -> int:
        """The current process (and process group) of function ``name``."""
        with self._function_lock:
            return self._functions[name][0].pid

    def emulator_process_group(self, kind: str) -> int:
        """The process group of the ``pubsub`` or ``firestore`` emulator (Java included),
        for fault runs that freeze it."""
        return self._emulators[kind].process.pid

    @property
    def push_loops(self) -> dict[str, PushLoop]:
        return dict(self._loops)

    def save_state(self, path: Path) -> None:
        """Write ``info`` to ``path``, and again whenever it changes (a restarted function
        is a new process group)."""
        self._state_file = path
        self.info.save(path)

    def __enter__(self) -> LocalPipeline:
        self._install_signal_handlers()
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def dead_processes(self) -> list[str]:
        """Names of started processes that exited on their own and will not come back: the
        emulators (a function that exits is restarted by the supervisor)."""
        processes = {f"{k} emulator": e.process for k, e in self._emulators.items()}
        return [name for name, process in processes.items() if process.poll() is not None]

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last lines of a process's log (``name`` as ``dead_processes`` gives it)."""
        kind, _, _ = name.partition(" ")
        if kind in self._emulators:
            return log_tail(self._emulators[kind].log_path, lines)
        return log_tail(self.options.work_dir / "logs" / f"{kind}.log", lines)

    # ------------------------------------------------------------------ start

    def _start(self) -> None:
        logs = self.options.work_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self._start_emulators(logs)
        self._create_topics()
        if not self.options.keep_data:
            try:
                clear_firestore(self._hosts["firestore"], self.options.project)
            except OSError as exc:
                raise PipelineError(f"cannot empty the Firestore emulator: {exc}") from exc
        record = self.options.work_dir / "ga4.ndjson"
        record.unlink(missing_ok=True)
        if self.options.ga4_endpoint:
            ga4_url, ga4_record = self.options.ga4_endpoint.rstrip("/"), ""
        else:
            self._ga4 = LocalGa4(record).__enter__()
            ga4_url, ga4_record = self._ga4.url, str(record.resolve())
        self._report("starting the resolve and forward functions...")
        self._start_functions(logs, ga4_url)
        self._create_subscriptions()
        self._start_push_loops()
        self._supervisor = threading.Thread(
            target=self._supervise, name="pipeline-supervisor", daemon=True
        )
        self._supervisor.start()
        self._info = PipelineInfo(
            project=self.options.project,
            pubsub_host=self._hosts["pubsub"],
            firestore_host=self._hosts["firestore"],
            functions={
                name: f"http://127.0.0.1:{port}/" for name, (_, port) in self._functions.items()
            },
            ga4_url=ga4_url,
            ga4_record=ga4_record,
            logs={name: str((logs / f"{name}.log").resolve()) for name in FUNCTIONS},
            topics=asdict(self.topics),
            subscriptions=self.subscriptions,
            measurement_id=self.options.measurement_id,
            pii_hash_secret=LOCAL_SECRETS["PII_HASH_SECRET"],
            pid=os.getpid(),
            process_groups=self.process_groups,
            destination=self.options.destination,
        )

    def _start_emulators(self, logs: Path) -> None:
        given = {"pubsub": self.options.pubsub_host, "firestore": self.options.firestore_host}
        missing = []
        for kind, variable in HOST_VARIABLES.items():
            host = given[kind] or ""
            if not host and self.options.emulators_from_environment:
                host = os.environ.get(variable, "").strip()
            if host:
                _check_listening(host, f"the {kind} emulator ({variable})")
                self._hosts[kind] = host
                self._report(f"using the {kind} emulator at {host}")
            else:
                missing.append(kind)
        if not missing:
            return
        self._report(f"starting the {' and '.join(missing)} emulator(s)...")
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            futures = {kind: pool.submit(start_emulator, kind, logs) for kind in missing}
        failures = []
        for kind, future in futures.items():
            try:
                self._emulators[kind] = future.result()
            except (RuntimeError, OSError) as exc:
                failures.append(f"{kind}: {exc}")
            else:
                self._hosts[kind] = self._emulators[kind].host
        if failures:
            raise PipelineError("; ".join(failures))

    def _client_environment(self) -> contextlib.AbstractContextManager[None]:
        return client_environment(
            self.options.project, self._hosts["pubsub"], self._hosts["firestore"]
        )

    def _create_topics(self) -> None:
        from google.api_core import exceptions as gexc
        from google.cloud.pubsub_v1 import PublisherClient

        with self._client_environment():
            publisher = PublisherClient()
        for topic in asdict(self.topics).values():
            with contextlib.suppress(gexc.AlreadyExists):
                publisher.create_topic(name=publisher.topic_path(self.options.project, topic))

    def _function_env(self, ga4_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in HOST_VARIABLES.values()}
        env.update(
            {
                "THREADS": str(FUNCTION_THREADS),
                "PUBSUB_EMULATOR_HOST": self._hosts["pubsub"],
                "FIRESTORE_EMULATOR_HOST": self._hosts["firestore"],
                "GOOGLE_CLOUD_PROJECT": self.options.project,
                "GA4_ENDPOINT": ga4_url,
                "GA4_MEASUREMENT_ID": self.options.measurement_id,
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join([str(MAIN.parent.parent), env.get("PYTHONPATH", "")]),
                **LOCAL_SECRETS,
                **self._destination_env(ga4_url),
                **self.options.function_env,
            }
        )
        return env

    def _destination_env(self, ga4_url: str) -> dict[str, str]:
        """The forwarder's destination settings (``PipelineOptions.destination``)."""
        if self.options.destination != DATA_MANAGER:
            return {"GA4_DESTINATION": MEASUREMENT_PROTOCOL}
        return {
            "GA4_DESTINATION": DATA_MANAGER,
            "GA4_PROPERTY_ID": LOCAL_PROPERTY_ID,
            "DATA_MANAGER_ENDPOINT": ga4_url,
        }

    def _spawn_function(self, name: str, port: int, *, append: bool) -> subprocess.Popen[bytes]:
        return spawn(
            [
                functions_framework_command(),
                *("--target", name, "--source", str(MAIN)),
                *("--signature-type", "http"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            self.options.work_dir / "logs" / f"{name}.log",
            env=self._function_env(self._ga4_url),
            cwd=MAIN.parent.parent,
            append=append,
        )

    def _start_functions(self, logs: Path, ga4_url: str) -> None:
        self._ga4_url = ga4_url
        for name in FUNCTIONS:
            port = free_port()
            self._functions[name] = (self._spawn_function(name, port, append=False), port)
        for name, (process, port) in self._functions.items():
            try:
                wait_for_port("127.0.0.1", port, self.options.startup_timeout, process)
            except (RuntimeError, TimeoutError) as exc:
                tail = (logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise PipelineError(f"the {name} function did not start: {exc}\n{tail}") from exc

    def _create_subscriptions(self) -> None:
        from google.api_core import exceptions as gexc
        from google.cloud.pubsub_v1 import SubscriberClient

        with self._client_environment():
            subscriber = SubscriberClient()
        project, topics, delivery = self.options.project, self.topics, self.options.delivery

        def topic(name: str) -> str:
            return f"projects/{project}/topics/{name}"

        pushes = {"resolve": topics.raw_events, "forward": topics.enriched}
        dead_letters = {
            "resolve": topics.resolve_dead_letter,
            "forward": topics.forward_dead_letter,
        }
        # The export's stand-ins first: a subscription gets only what is published after it
        # exists. Enriched events unordered (rows carry their publish time, and an ordered
        # pull hands out one message per key per acknowledgement); identity links ordered.
        exports: dict[str, dict[str, Any]] = {
            "enriched_events": {"topic": topic(topics.enriched)},
            "identity_links": {
                "topic": topic(topics.identity_links),
                "enable_message_ordering": True,
            },
        }
        requests: list[dict[str, Any]] = [
            {"name": self.subscriptions[role], **request}
            for role, request in exports.items()
            if role in self.subscriptions
        ]
        for role, source in pushes.items():
            # A pull subscription that the push loop drains: ordering, backoff and dead
            # letters are the loop's (the emulator withholds an ordered pull subscription's
            # later messages per key behind unacknowledged ones, which the loop holds).
            requests.append(
                {
                    "name": self.subscriptions[role],
                    "topic": topic(source),
                    "ack_deadline_seconds": delivery.ack_deadline_seconds,
                }
            )
        for role, source in dead_letters.items():
            requests.append(
                {
                    "name": self.subscriptions[f"{role}_dead_letter"],
                    "topic": topic(source),
                    "ack_deadline_seconds": 60,
                }
            )
        for request in requests:
            path = subscriber.subscription_path(project, request["name"])
            # Left over from an earlier run on attached emulators: it may push to a dead port.
            with contextlib.suppress(gexc.NotFound):
                subscriber.delete_subscription(subscription=path)
            subscriber.create_subscription(request={**request, "name": path})

    def _start_push_loops(self) -> None:
        from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
        from google.cloud.pubsub_v1.types import BatchSettings

        with self._client_environment():
            subscriber = SubscriberClient()
            publisher = PublisherClient(batch_settings=BatchSettings(max_latency=0.01))
        project = self.options.project
        dead_letters = {
            "resolve": self.topics.resolve_dead_letter,
            "forward": self.topics.forward_dead_letter,
        }
        workers = self.options.push_workers
        for role in FUNCTIONS:
            path = f"projects/{project}/subscriptions/{self.subscriptions[role]}"
            self._loops[role] = PushLoop(
                path,
                f"http://127.0.0.1:{self._functions[role][1]}/",
                self.options.delivery.retry_policy(),
                source=EmulatorSource(subscriber, path),
                push=HttpPusher(workers),
                dead_letter=EmulatorDeadLetters(
                    publisher, f"projects/{project}/topics/{dead_letters[role]}"
                ),
                workers=workers,
                report=self._prefixed(f"{role} delivery: "),
            ).start()

    def _prefixed(self, prefix: str) -> Callable[[str], None]:
        def report(text: str) -> None:
            self._report(prefix + text)

        return report

    # ------------------------------------------------------------------ supervise

    def _supervise(self) -> None:
        """Restart a function that exited; report a worker functions-framework replaced."""
        started = {name: time.monotonic() for name in self._functions}
        members = {name: set(group_members(p.pid)) for name, (p, _) in self._functions.items()}
        for tick in itertools.count():
            if self._stopping.wait(0.2):
                return
            for name in FUNCTIONS:
                with self._function_lock:
                    if self._stopping.is_set() or name not in self._functions:
                        return
                    process, port = self._functions[name]
                if process.poll() is None:
                    if tick % 5:
                        continue  # workers are looked for once a second: /proc is a scan
                    now = set(group_members(process.pid))
                    gone = members[name] - now
                    if gone and process.pid not in gone and now:
                        self._report(
                            f"{name} function: worker {', '.join(map(str, sorted(gone)))} "
                            f"exited; functions-framework runs "
                            f"{', '.join(map(str, sorted(now - {process.pid})))} now"
                        )
                    members[name] = now
                    continue
                if time.monotonic() - started[name] > STABLE_SECONDS:
                    self._streak[name] = 0
                restarted = self._restart_function(name, process, port)
                if restarted is None:
                    return
                started[name] = time.monotonic()
                members[name] = set(group_members(restarted.pid))
            self._update_state_file()

    def _restart_function(
        self, name: str, process: subprocess.Popen[bytes], port: int
    ) -> subprocess.Popen[bytes] | None:
        streak = self._streak.get(name, 0)
        count = self._restarts.get(name, 0)
        delay = RESTART_DELAYS[min(streak, len(RESTART_DELAYS) - 1)]
        code = process.returncode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        tail = log_tail(self.options.work_dir / "logs" / f"{name}.log", 10)
        self._report(
            f"{name} function exited ({how}); restarting it in {delay:g} s "
            f"(restart {count + 1}); last lines of its log:\n{tail}"
        )
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        wait_group_gone(process.pid, 5.0)
        if self._stopping.wait(delay):
            return None
        with self._function_lock:
            if self._stopping.is_set():
                return None
            restarted = self._spawn_function(name, port, append=True)
            self._functions[name] = (restarted, port)
            self._restarts[name] = count + 1
            self._streak[name] = streak + 1
        deadline = time.monotonic() + self.options.startup_timeout
        while not self._stopping.is_set() and time.monotonic() < deadline:
            if restarted.poll() is not None:
                return restarted  # the next round reports it and tries again
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                self._report(f"{name} function restarted (pid {restarted.pid}, port {port})")
                return restarted
            time.sleep(0.1)
        if not self._stopping.is_set():
            self._report(f"{name} function does not listen on port {port} yet; still waiting")
        return restarted

    def _update_state_file(self) -> None:
        if self._info is None:
            return
        groups = self.process_groups
        if groups == self._info.process_groups:
            return
        self._info = PipelineInfo.from_json({**self._info.to_json(), "process_groups": groups})
        if self._state_file is not None:
            with contextlib.suppress(OSError):
                self._info.save(self._state_file)

    # ------------------------------------------------------------------ stop

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def interrupt(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(signal.Signals(signum).name)

        # SIGINT too: a process started in the background inherits SIGINT ignored, and
        # an explicit ``kill -INT`` must still stop it cleanly.
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._signals[signum] = signal.signal(signum, interrupt)

    def _stop(self) -> None:
        main = threading.current_thread() is threading.main_thread()
        previous: dict[signal.Signals, Any] = {}
        if main:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, signal.SIG_IGN)
        try:
            self._stop_everything()
        finally:
            if main:
                for signum, handler in {**previous, **self._signals}.items():
                    signal.signal(signum, handler)
                self._signals.clear()

    def _stop_everything(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=30)
            self._supervisor = None
        for loop in self._loops.values():
            loop.stop()
        self._loops.clear()
        groups = self.process_groups
        if groups:
            self._report(f"stopping {len(groups)} processes...")
        for process, _ in reversed(list(self._functions.values())):
            stop_process_group(process)
        if self._ga4 is not None:
            self._ga4.__exit__(None, None, None)
            self._ga4 = None
        for emulator in reversed(list(self._emulators.values())):
            emulator.stop()
        self._functions.clear()
        self._emulators.clear()
        self._info = None
        left = {pgid: pids for pgid in groups if (pids := wait_group_gone(pgid, 5.0))}
        for pgid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        if left:
            raise OrphanProcessError(f"processes outlived the pipeline (killed): {left}")
