"""The results table: one row per figure, both designs side by side, ratio and target.

``ratio`` is ga4-stitch's value over the baseline's, both measured in the same run (for
RPCs and latency lower is better, for throughput higher is better).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

HEADER = ("benchmark", "figure", "baseline", "ga4-stitch", "ratio", "target", "met")


@dataclass(frozen=True)
class Row:
    benchmark: str
    figure: str
    baseline: Any
    ours: Any
    ratio: float | None
    target: str
    met: str

    def cells(self) -> tuple[str, ...]:
        return (
            self.benchmark,
            self.figure,
            _text(self.baseline),
            _text(self.ours),
            "" if self.ratio is None else f"{self.ratio:.2f}x",
            self.target,
            self.met,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ratio(ours: float | None, baseline: float | None) -> float | None:
    if ours is None or baseline is None or baseline == 0:
        return None
    return round(ours / baseline, 3)


def verdict(met: bool) -> str:
    return "yes" if met else "NO"


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def console(rows: Sequence[Row]) -> str:
    table = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )
