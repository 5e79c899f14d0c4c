"""The cheapest push handler functions-framework can serve, for ``instructions_bench``.

It reads the push body, decodes the message's data as the functions do, and acknowledges.
What it costs per request (gunicorn, Flask, functions-framework, the push body's JSON and
base64) is the floor under both functions: no handler of ours can go below it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import functions_framework


@functions_framework.http
def acknowledge(request: Any) -> tuple[str, int]:
    envelope = json.loads(request.get_data())
    json.loads(base64.b64decode(envelope["message"]["data"]))
    return "", 200
