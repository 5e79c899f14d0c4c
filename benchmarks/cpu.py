"""CPU time spent by this process and by the emulator, the figure noise cannot inflate.

Wall-clock throughput on a shared 2-core machine moves with whatever else runs; CPU
seconds consumed per event by the client process (``time.process_time``, all threads)
and by the emulator (``/proc`` utime + stime of every process in its process group, the
Java child included) do not, so both are reported beside events per second.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def group_processes(pgid: int) -> dict[int, list[str]]:
    """The live processes of process group ``pgid``: pid -> the fields of its
    ``/proc/<pid>/stat`` after the command name (state first)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            found[int(entry.name)] = fields
    return found


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes in process group ``pgid``."""
    ticks = sum(int(f[11]) + int(f[12]) for f in group_processes(pgid).values())
    return ticks / _TICKS


@dataclass(frozen=True)
class CpuMark:
    client: float
    emulator: float

    @classmethod
    def now(cls, emulator_pgid: int | None) -> CpuMark:
        emulator = group_cpu_seconds(emulator_pgid) if emulator_pgid else 0.0
        return cls(time.process_time(), emulator)

    def since(self, earlier: CpuMark, events: int) -> dict[str, float]:
        """CPU milliseconds per event, by side, since ``earlier``."""
        per = 1000 / max(1, events)
        client = (self.client - earlier.client) * per
        emulator = (self.emulator - earlier.emulator) * per
        return {
            "client": round(client, 3),
            "emulator": round(emulator, 3),
            "total": round(client + emulator, 3),
        }
