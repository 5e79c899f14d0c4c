"""What a Pub/Sub push request carries, read once: the message envelope and its id.

The pipeline functions are HTTP functions fed by push subscriptions
(``terraform/pubsub.tf``). A push body is ``{"message": {...}, "subscription": ...}``:
exactly the ``data`` of the Pub/Sub CloudEvent Eventarc would deliver, with the message id
as the event's id. Reading it here, instead of declaring CloudEvent functions, spares
functions-framework's conversion: it first tries the body as a CloudEvent (and fails),
then parses the same JSON again to build one, about a sixth of the forward function's
Python CPU per delivery under load (sampled with py-spy in the end-to-end benchmark).

A request that *is* a CloudEvent (structured ``application/cloudevents+json``, or binary
with ``ce-`` headers, as Eventarc or a test sends it) is read with the ``cloudevents``
library into the same pair, so both shapes reach the services identically.

Invariant: ``delivery`` never raises. What is not a push body comes back as it was (text
for a body that is not JSON), so the service dead-letters it with its reason
(``not_pubsub``) and keeps its content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["Headers", "delivery"]


class Headers(Protocol):
    """Request headers looked up case-insensitively (Flask's and werkzeug's are)."""

    def get(self, key: str) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


CLOUDEVENT_TYPE = "application/cloudevents"


def delivery(body: bytes, headers: Headers) -> tuple[Any, str | None]:
    """The CloudEvent data a service handles, and its id (the Pub/Sub message id)."""
    content_type = headers.get("Content-Type") or ""
    if headers.get("ce-id") is not None or content_type.startswith(CLOUDEVENT_TYPE):
        return _cloud_event(body, headers)
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="backslashreplace"), None
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        return data, None
    event_id = message.get("messageId") or message.get("message_id")
    return data, str(event_id) if event_id else None


def _cloud_event(body: bytes, headers: Headers) -> tuple[Any, str | None]:
    from cloudevents.exceptions import GenericException
    from cloudevents.http import from_http

    try:
        event = from_http(dict(headers.items()), body)
    except (GenericException, ValueError, TypeError) as error:
        text = body[:10_000].decode("utf-8", errors="backslashreplace")
        return {"invalid_cloud_event": str(error), "body": text}, None
    return event.data, str(event["id"])
