"""The whole pipeline on this machine, for the duration of a ``with`` block.

``LocalPipeline`` starts (or attaches to) the Pub/Sub and Firestore emulators, creates the
topics and subscriptions the way ``terraform/pubsub.tf`` does in the cloud (ordered push
subscriptions with a retry and a dead-letter policy feeding the two functions, pull
subscriptions on both dead-letter topics), runs ``resolve`` and ``forward`` under
functions-framework as separate processes, and serves the local GA4 endpoint in a thread.
``info`` says where everything listens; ``PipelineInfo.save`` writes it as the state file
other commands attach to.

Invariant: every process the pipeline starts runs in its own process group and is stopped
(SIGTERM, then SIGKILL) when the block ends, whatever ends it: a normal exit, an
exception, Ctrl-C or SIGTERM. Signals are ignored while stopping, so a second Ctrl-C cannot
leave half of it running; the exit then scans ``/proc`` for any process left in those
groups (gcloud's Java children included) and raises ``OrphanProcessError`` naming them.
"""

from __future__ import annotations

import contextlib
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

from ga4_stitch.emulators import (
    HOST_VARIABLES,
    Emulator,
    clear_firestore,
    free_port,
    spawn,
    start_emulator,
    stop_process_group,
    wait_for_port,
)
from ga4_stitch.ga4_endpoint import LocalGa4
from shared.settings import Topics

PROJECT = "demo-ga4-stitch"
LOCAL_MEASUREMENT_ID = "G-LOCAL00001"
LOCAL_SECRETS = {
    "GA4_API_SECRET": "local-secret",
    "LINK_TOKEN_SECRET": "local-link-token-secret-0001",
    "PII_HASH_SECRET": "local-pii-hash-secret-00001",
}
"""Demo values for the local functions only; never a deployment's secrets."""
FUNCTIONS = ("resolve", "forward")
MAIN = Path(__file__).resolve().parent.parent / "functions" / "main.py"
_ENVIRONMENT_LOCK = threading.Lock()


class PipelineError(RuntimeError):
    """The local pipeline could not start (a missing tool, a process that died)."""


class OrphanProcessError(PipelineError):
    """A process the pipeline started was still alive after it stopped everything."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """Push subscription settings; defaults are ``terraform/variables.tf``'s."""

    ack_deadline_seconds: int = 60
    minimum_backoff_seconds: int = 10
    maximum_backoff_seconds: int = 600
    max_delivery_attempts: int = 10


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


def subscription_names(topics: Topics) -> dict[str, str]:
    """Role -> subscription name, as ``terraform/pubsub.tf`` names them (plus a local pull
    subscription on identity-links standing in for the BigQuery export)."""
    return {
        "resolve": "ga4-stitch-resolve",
        "forward": "ga4-stitch-forward",
        "resolve_dead_letter": f"{topics.resolve_dead_letter}-pull",
        "forward_dead_letter": f"{topics.forward_dead_letter}-pull",
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PipelineInfo:
        return cls(**{name: value[name] for name in cls.__dataclass_fields__})

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
        self.subscriptions = subscription_names(self.topics)
        self._report = report or (lambda _: None)
        self._emulators: dict[str, Emulator] = {}
        self._hosts: dict[str, str] = {}
        self._functions: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
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
        """Process group ids of every process this pipeline started."""
        started = [e.process.pid for e in self._emulators.values()]
        return started + [process.pid for process, _ in self._functions.values()]

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
        """Names of started processes that have exited on their own."""
        processes = {f"{k} emulator": e.process for k, e in self._emulators.items()}
        processes.update({f"{name} function": p for name, (p, _) in self._functions.items()})
        return [name for name, process in processes.items() if process.poll() is not None]

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
        self._ga4 = LocalGa4(record).__enter__()
        self._report("starting the resolve and forward functions...")
        self._start_functions(logs, self._ga4.url)
        self._create_subscriptions()
        self._info = PipelineInfo(
            project=self.options.project,
            pubsub_host=self._hosts["pubsub"],
            firestore_host=self._hosts["firestore"],
            functions={
                name: f"http://127.0.0.1:{port}/" for name, (_, port) in self._functions.items()
            },
            ga4_url=self._ga4.url,
            ga4_record=str(record.resolve()),
            logs={name: str((logs / f"{name}.log").resolve()) for name in FUNCTIONS},
            topics=asdict(self.topics),
            subscriptions=self.subscriptions,
            measurement_id=self.options.measurement_id,
            pii_hash_secret=LOCAL_SECRETS["PII_HASH_SECRET"],
            pid=os.getpid(),
            process_groups=self.process_groups,
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
                "PUBSUB_EMULATOR_HOST": self._hosts["pubsub"],
                "FIRESTORE_EMULATOR_HOST": self._hosts["firestore"],
                "GOOGLE_CLOUD_PROJECT": self.options.project,
                "GA4_ENDPOINT": ga4_url,
                "GA4_MEASUREMENT_ID": self.options.measurement_id,
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join([str(MAIN.parent.parent), env.get("PYTHONPATH", "")]),
                **LOCAL_SECRETS,
                **self.options.function_env,
            }
        )
        return env

    def _start_functions(self, logs: Path, ga4_url: str) -> None:
        command = functions_framework_command()
        env = self._function_env(ga4_url)
        for name in FUNCTIONS:
            port = free_port()
            process = spawn(
                [
                    command,
                    *("--target", name, "--source", str(MAIN)),
                    *("--signature-type", "cloudevent"),
                    *("--host", "127.0.0.1", "--port", str(port)),
                ],
                logs / f"{name}.log",
                env=env,
                cwd=MAIN.parent.parent,
            )
            self._functions[name] = (process, port)
        for name, (process, port) in self._functions.items():
            try:
                wait_for_port("127.0.0.1", port, self.options.startup_timeout, process)
            except (RuntimeError, TimeoutError) as exc:
                tail = (logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise PipelineError(f"the {name} function did not start: {exc}\n{tail}") from exc

    def _create_subscriptions(self) -> None:
        from google.api_core import exceptions as gexc
        from google.cloud.pubsub_v1 import SubscriberClient
        from google.protobuf import duration_pb2

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
        requests: list[dict[str, Any]] = []
        for role, source in pushes.items():
            requests.append(
                {
                    "name": self.subscriptions[role],
                    "topic": topic(source),
                    "push_config": {
                        "push_endpoint": f"http://127.0.0.1:{self._functions[role][1]}/"
                    },
                    "ack_deadline_seconds": delivery.ack_deadline_seconds,
                    "enable_message_ordering": True,
                    "retry_policy": {
                        "minimum_backoff": duration_pb2.Duration(
                            seconds=delivery.minimum_backoff_seconds
                        ),
                        "maximum_backoff": duration_pb2.Duration(
                            seconds=delivery.maximum_backoff_seconds
                        ),
                    },
                    "dead_letter_policy": {
                        "dead_letter_topic": topic(dead_letters[role]),
                        "max_delivery_attempts": delivery.max_delivery_attempts,
                    },
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
        requests.append(
            {
                "name": self.subscriptions["identity_links"],
                "topic": topic(topics.identity_links),
                "enable_message_ordering": True,
            }
        )
        for request in requests:
            path = subscriber.subscription_path(project, request["name"])
            # Left over from an earlier run on attached emulators: it may push to a dead port.
            with contextlib.suppress(gexc.NotFound):
                subscriber.delete_subscription(subscription=path)
            subscriber.create_subscription(request={**request, "name": path})

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
        groups = self.process_groups
        if groups:
            self._report(f"stopping {len(groups)} processes...")
        if self._functions and not self._emulators.get("pubsub"):
            self._delete_push_subscriptions()
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

    def _delete_push_subscriptions(self) -> None:
        """On emulators we do not own, stop them pushing to ports that are about to close."""
        from google.api_core import exceptions as gexc
        from google.cloud.pubsub_v1 import SubscriberClient

        with self._client_environment():
            subscriber = SubscriberClient()
        for role in FUNCTIONS:
            path = subscriber.subscription_path(self.options.project, self.subscriptions[role])
            with contextlib.suppress(gexc.GoogleAPIError):
                subscriber.delete_subscription(subscription=path, timeout=5)
