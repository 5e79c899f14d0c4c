"""inspect and erase against the Firestore emulator, on state the real store wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ga4_stitch.cli import main
from ga4_stitch.inspect import format_report
from shared import bootstrap
from shared.domain.events import decode_raw_event
from shared.domain.resolution import Rules, resolve_event
from shared.domain.state import ClientState, expires_at
from shared.ports import Snapshot, UserLink
from shared.services.erase import erase_user
from shared.services.inspect import client_report, user_report
from shared.settings import Settings

pytestmark = pytest.mark.integration

SECRET = "inspect-test-pii-secret"
T0 = 1_763_800_000_000_000
MINUTE = 60_000_000
NOW = T0 + 600 * MINUTE
LAPTOP, PHONE, CHECKOUT, OTHER = "111.222", "333.444", "555.666", "777.888"


class World:
    """Writes state the way the resolver does: pure core, then the Firestore store."""

    def __init__(self, unique: str) -> None:
        os.environ.update({"PII_HASH_SECRET": SECRET, "COLLECTION_PREFIX": f"t{unique}_"})
        self.settings = Settings.from_env(os.environ)
        client = bootstrap.firestore_client(self.settings)
        self.store = bootstrap.state_store(self.settings, client)
        self.reader = bootstrap.state_admin(self.settings, client)
        self.rules = Rules(sessions=self.settings.sessions, identity=self.settings.identity)
        self.expires = expires_at(NOW, self.settings.ttl_micros)

    def feed(self, client_id: str, event_id: str, minute: int, **fields: Any) -> None:
        data = {
            "client_id": client_id,
            "event_name": "page_view",
            "event_id": event_id,
            "timestamp_micros": T0 + minute * MINUTE,
            **fields,
        }
        event = decode_raw_event(data, event_id, None)
        snapshot = self.store.load(event.client_id)
        resolution = resolve_event(snapshot.state, event, self.rules, NOW)
        user = resolution.resolved.user_id
        links = (
            [UserLink(user, client_id, event.time_micros)] if resolution.new_link and user else []
        )
        self.store.save(snapshot, resolution.state, links, self.expires)

    def alias(self, client_id: str, canonical: str) -> None:
        state = ClientState(client_id=client_id, first_seen_micros=T0, alias_of=canonical)
        self.store.save(Snapshot(None, None), state, [], self.expires)


@pytest.fixture
def world(clean_firestore: str, unique: str) -> World:
    result = World(unique)
    result.feed(LAPTOP, "l-1", 0)
    result.feed(LAPTOP, "l-2", 2, event_name="login", user_id="cust-1")
    result.feed(LAPTOP, "l-3", 120)
    result.feed(PHONE, "p-1", 10, user_id="cust-1")
    result.feed(PHONE, "p-2", 11, event_name="logout", user_id="cust-1")
    result.feed(OTHER, "o-1", 5, user_id="cust-2")
    result.alias(CHECKOUT, LAPTOP)
    return result


def test_a_client_report_shows_identity_sessions_and_aliases(world: World) -> None:
    """Marks with ISO times, both sessions with ids and numbers, the checkout alias."""
    report = client_report(world.reader, LAPTOP)
    assert report["found"]
    assert report["aliases"] == [CHECKOUT]
    assert report["identity"]["linked_users"] == ["cust-1"]
    assert report["identity"]["marks"] == [{"at": "2025-11-22T08:28:40Z", "user_id": "cust-1"}]
    (stream,) = report["streams"]
    assert [(w["session_number"], w["session_id"]) for w in stream["windows"]] == [
        (1, T0 // 1_000_000),
        (2, (T0 + 120 * MINUTE) // 1_000_000),
    ]
    assert report["recent_event_ids"] == 3
    text = format_report(report)
    assert "login cust-1" in text
    assert f"aliases          {CHECKOUT}" in text
    assert "#2   session_id" in text


def test_a_logout_shows_as_a_mark_without_a_user(world: World) -> None:
    """The phone's history: logged in, then logged out."""
    report = client_report(world.reader, PHONE)
    assert [mark["user_id"] for mark in report["identity"]["marks"]] == ["cust-1", None]
    assert report["identity"]["current_user"] is None
    assert "logout" in format_report(report)


def test_a_user_report_lists_every_linked_client(world: World) -> None:
    """The user document is keyed by the HMAC, and holds both devices."""
    report = user_report(world.reader, "cust-1")
    assert report["found"]
    assert report["document"].startswith(f"{world.settings.collection_prefix}users/u_")
    assert sorted(report["client_ids"]) == [LAPTOP, PHONE]
    assert {client["client_id"] for client in report["clients"]} == {LAPTOP, PHONE}


def test_nothing_stored_is_said_plainly(world: World) -> None:
    """An unknown client or user is a report with found false."""
    assert not client_report(world.reader, "1.1")["found"]
    assert "nothing stored" in format_report(user_report(world.reader, "nobody"))


def test_erasing_a_user_deletes_their_clients_and_aliases_and_nothing_else(world: World) -> None:
    """User document, both devices, the checkout alias; another user's client stays."""
    erasure = erase_user(world.reader, "cust-1")
    prefix = world.settings.collection_prefix
    assert sorted(erasure.deleted) == sorted(
        [
            f"{prefix}clients/{LAPTOP}",
            f"{prefix}clients/{CHECKOUT}",
            f"{prefix}clients/{PHONE}",
            world.reader.user_path("cust-1"),
        ]
    )
    assert erasure.absent == []
    for client in (LAPTOP, PHONE, CHECKOUT):
        assert world.reader.client_record(client) is None
    assert world.reader.user_record("cust-1") is None
    assert world.reader.client_record(OTHER) is not None
    assert world.reader.user_record("cust-2") is not None


def test_the_commands_inspect_and_erase(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From the environment's emulator: inspect as JSON, erase, inspect again finds nothing."""
    state = ["--state-dir", str(tmp_path)]
    assert main(["inspect", "--user-id", "cust-1", "--json", *state]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["client_ids"]) == [LAPTOP, PHONE]
    assert main(["erase", "--user-id", "cust-1", *state]) == 0
    out = capsys.readouterr().out
    assert out.count("deleted") == 4
    assert main(["inspect", "--client-id", LAPTOP, *state]) == 1
    assert "nothing stored" in capsys.readouterr().out


def test_inspect_without_any_firestore_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No running pipeline and no emulator or project in the environment: exit 2, one line."""
    for name in ("FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "GCP_PROJECT"):
        os.environ.pop(name, None)
    assert main(["inspect", "--client-id", LAPTOP, "--state-dir", str(tmp_path)]) == 2
    assert "FIRESTORE_EMULATOR_HOST" in capsys.readouterr().err
