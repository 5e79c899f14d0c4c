"""Start and stop the Pub/Sub and Firestore emulators as owned child processes.

``gcloud ... emulators ... start`` spawns a Java child. Each emulator therefore runs in
its own process group (``start_new_session=True``) and is stopped with ``os.killpg``, so
no Java process outlives its owner. Readiness is polled on the port, never slept for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

EMULATOR_COMMANDS = {
    "pubsub": ["gcloud", "beta", "emulators", "pubsub", "start"],
    "firestore": ["gcloud", "emulators", "firestore", "start"],
}
HOST_VARIABLES = {"pubsub": "PUBSUB_EMULATOR_HOST", "firestore": "FIRESTORE_EMULATOR_HOST"}


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Poll until ``host:port`` accepts connections, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout:.0f}s")


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the whole group, then SIGKILL what is left after ``grace`` seconds."""
    if process.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


@dataclass
class Emulator:
    """One running emulator; ``host`` is what ``*_EMULATOR_HOST`` should hold."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process_group(self.process)


def spawn(
    command: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    *,
    append: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a process group of its own, output to ``log_path``, so that
    ``stop_process_group`` can end it and every child it spawns. ``append`` keeps what the
    log holds (a restarted process continues its predecessor's log, which readers tail)."""
    with log_path.open("ab" if append else "wb") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )


def start_emulator(kind: str, log_dir: Path, timeout: float = 90.0) -> Emulator:
    """Start ``kind`` (``pubsub`` or ``firestore``) on a free port and wait until it listens."""
    port = free_port()
    log_path = log_dir / f"{kind}-emulator.log"
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [*EMULATOR_COMMANDS[kind], f"--host-port=127.0.0.1:{port}", "--quiet"]
    process = spawn(command, log_path)
    emulator = Emulator(kind=kind, port=port, process=process, log_path=log_path)
    try:
        wait_for_port("127.0.0.1", port, timeout, process)
    except (RuntimeError, TimeoutError) as exc:
        emulator.stop()
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the {kind} emulator did not start: {exc}\n{tail}") from exc
    return emulator


@contextlib.contextmanager
def running_emulators(
    log_dir: Path, kinds: tuple[str, ...] = ("pubsub", "firestore")
) -> Iterator[dict[str, Emulator]]:
    """Both emulators for the duration of the block, stopped afterwards whatever happens."""
    started: dict[str, Emulator] = {}
    try:
        for kind in kinds:
            started[kind] = start_emulator(kind, log_dir)
        yield started
    finally:
        for emulator in started.values():
            emulator.stop()


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, indented, for an error message ("" if none)."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - 16_384))
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:])


def clear_firestore(host: str, project: str) -> None:
    """Delete every document in the emulator's default database (emulator-only endpoint)."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        response.read()


def emulator_env(emulators: dict[str, Emulator]) -> dict[str, str]:
    """The environment variables the Google client libraries read to find the emulators."""
    return {HOST_VARIABLES[kind]: emulator.host for kind, emulator in emulators.items()}
