"""Cloud Functions entry points: decode, call the service, return.

Every entry point builds its runtime (settings, clients) lazily on first use and keeps it
for the instance's lifetime; nothing happens at import time. The pipeline functions are
HTTP functions that read the Pub/Sub push request themselves (``shared.adapters.push``,
which says why); a CloudEvent request reads the same. Answering 200 acknowledges the
message (the service has already dead-lettered it if it was bad); raising answers 500,
so Pub/Sub redelivers.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

import functions_framework

from shared.adapters.push import delivery
from shared.logs import configure
from shared.settings import Settings

if TYPE_CHECKING:
    from flask import Request

    from shared.services.forward import ForwardRuntime
    from shared.services.inline import InlineRuntime
    from shared.services.resolve import ResolveRuntime


@functools.cache
def settings() -> Settings:
    loaded = Settings.from_env(os.environ)
    configure(loaded.log_level)
    return loaded


@functools.cache
def resolve_runtime() -> ResolveRuntime:
    from shared import bootstrap

    return bootstrap.resolve_runtime(settings())


@functools.cache
def forward_runtime() -> ForwardRuntime:
    from shared import bootstrap

    return bootstrap.forward_runtime(settings())


@functools.cache
def inline_runtime() -> InlineRuntime:
    from shared import bootstrap

    return bootstrap.inline_runtime(settings())


ACKNOWLEDGED = ("", 200)


@functions_framework.http
def resolve(request: Request) -> Any:
    """Raw event in, enriched event (and identity links) out."""
    resolve_runtime().handle(*delivery(request.get_data(), request.headers))
    return ACKNOWLEDGED


@functions_framework.http
def forward(request: Request) -> Any:
    """Enriched event in, one Measurement Protocol request out (at most once per event)."""
    forward_runtime().handle(*delivery(request.get_data(), request.headers))
    return ACKNOWLEDGED


@functions_framework.http
def resolve_identity_session(request: Request) -> Any:
    """Inline resolution for the GTM SC variable template."""
    return inline_runtime().handle_resolve(request)


@functions_framework.http
def mint_link_token(request: Request) -> Any:
    """A signed, single-use cross-domain link token for a client."""
    return inline_runtime().handle_mint(request)
