"""Fixtures shared by the integration tests of the functions."""

from __future__ import annotations

import os

import pytest

from tests.conftest import PROJECT
from tests.integration.pubsub_helpers import create_topic_with_subscription


@pytest.fixture
def topics(clean_firestore: str, unique: str) -> dict[str, str]:
    """Fresh enriched, identity-links and dead-letter topics in the emulator, named in the
    environment as a deployment would, each with a pull subscription (returned by variable)."""
    names = {
        "ENRICHED_TOPIC": f"enriched-{unique}",
        "IDENTITY_LINKS_TOPIC": f"links-{unique}",
        "RESOLVE_DEAD_LETTER_TOPIC": f"dead-{unique}",
    }
    os.environ.update(names)
    return {
        variable: create_topic_with_subscription(PROJECT, topic)
        for variable, topic in names.items()
    }
