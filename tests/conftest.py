"""Session-wide emulators for integration tests, and environment hygiene for all tests.

The Pub/Sub and Firestore emulators start once per test session on free ports with a
``demo-`` project id (which the client libraries never send to Google), only if a
collected test is marked ``integration`` or ``e2e``, and are stopped at the end even
when tests fail. Firestore data is cleared before each integration test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ga4_stitch.emulators import Emulator, clear_firestore, emulator_env, running_emulators

PROJECT = "demo-ga4-stitch"


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Each test sees, and leaves behind, the environment it started with."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Emulator]]:
    """Both emulators for the whole session; their hosts exported for client libraries."""
    log_dir = tmp_path_factory.mktemp("emulators")
    with running_emulators(Path(log_dir)) as started:
        saved = {k: os.environ.get(k) for k in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST")}
        os.environ.update(emulator_env(started))
        try:
            yield started
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture
def emulator_env_vars(emulators: dict[str, Emulator]) -> dict[str, str]:
    """Emulator hosts plus the demo project, as a function's environment would hold them."""
    env = emulator_env(emulators)
    env["GOOGLE_CLOUD_PROJECT"] = PROJECT
    os.environ.update(env)
    return env


@pytest.fixture
def clean_firestore(emulators: dict[str, Emulator], emulator_env_vars: dict[str, str]) -> str:
    """An empty Firestore emulator database; returns the emulator host."""
    host = emulators["firestore"].host
    clear_firestore(host, PROJECT)
    return host


@pytest.fixture
def unique() -> str:
    """A short id that keeps topic and subscription names apart between tests."""
    return uuid.uuid4().hex[:10]
