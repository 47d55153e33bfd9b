"""Peak memory and CPU time of a process, read from /proc (Linux), for the benchmarks' figures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What the kernel says about one process: peak resident set and CPU time used so far."""

    peak_rss_mb: float
    cpu_seconds: float


def peak_rss_mb(status: str) -> float:
    """VmHWM (the resident set's high-water mark) from the text of /proc/<pid>/status, in MiB."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise ValueError("no VmHWM line in /proc/<pid>/status")


def cpu_seconds(stat: str) -> float:
    """utime + stime from the text of /proc/<pid>/stat, in seconds."""
    # The command name (field 2) may hold spaces and parentheses: count fields after its end.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND  # fields 14 and 15 of stat


def read(pid: int | str = "self") -> ProcStat:
    """The process's figures now; raise ProcessLookupError if it is gone."""
    base = Path("/proc") / str(pid)
    try:
        return ProcStat(peak_rss_mb((base / "status").read_text()),
                        cpu_seconds((base / "stat").read_text()))
    except FileNotFoundError:
        raise ProcessLookupError(f"process {pid} is gone") from None
