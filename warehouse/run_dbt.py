"""Runs dbt in-process (dbtRunner) and writes what happened as JSON.

Usage (inside warehouse/.venv): python run_dbt.py RESULT.json DBT-ARGUMENTS...
The JSON holds ``success`` and, per node, its name, type, status, time and message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dbt.cli.main import dbtRunner


def main(argv: list[str]) -> int:
    result_path, arguments = Path(argv[0]), argv[1:]
    outcome = dbtRunner().invoke(arguments)
    nodes: list[dict[str, Any]] = []
    for item in getattr(outcome.result, "results", None) or []:
        node = getattr(item, "node", None)
        nodes.append(
            {
                "name": getattr(node, "name", None),
                "unique_id": getattr(node, "unique_id", None),
                "resource_type": str(getattr(node, "resource_type", "")),
                "status": str(item.status),
                "seconds": item.execution_time,
                "message": item.message,
                "failures": item.failures,
            }
        )
    error = None if outcome.exception is None else repr(outcome.exception)
    result_path.write_text(json.dumps({"success": outcome.success, "error": error, "nodes": nodes}))
    return 0 if outcome.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
