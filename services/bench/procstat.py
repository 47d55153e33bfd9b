"""Peak memory and CPU time of a process, and the machine's idle time, read from /proc (Linux),
for the benchmarks' figures."""

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
    fields = _fields(stat)
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND  # fields 14 and 15 of stat


def _fields(stat: str) -> list[str]:
    # The command name (field 2) may hold spaces and parentheses: count fields after its end.
    return stat.rsplit(")", 1)[1].split()


def tree_cpu_seconds(root: int, stats: dict[int, str]) -> float:
    """CPU time of ``root`` and of its children, live (in ``stats``: pid -> text of
    /proc/<pid>/stat) or already reaped (cutime + cstime), in seconds: a server whose work
    runs in child processes, as Postgres's backends do."""
    total = 0
    for pid, stat in stats.items():
        fields = _fields(stat)
        if pid == root or fields[1] == str(root):  # field 4 of stat is the parent's pid
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / _TICKS_PER_SECOND


def server_cpu_seconds(root: int) -> float:
    """``tree_cpu_seconds`` of a running process; raise ProcessLookupError if it is gone."""
    stats: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited meanwhile: its time is in the parent's cutime now
    if root not in stats:
        raise ProcessLookupError(f"process {root} is gone")
    return tree_cpu_seconds(root, stats)


def cpu_times(proc_stat: str) -> tuple[int, int]:
    """(idle, total) jiffies from the text of /proc/stat (idle includes iowait)."""
    values = [int(v) for v in proc_stat.splitlines()[0].split()[1:]]
    return values[3] + values[4], sum(values)


def machine_cpu() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine so far."""
    return cpu_times(Path("/proc/stat").read_text())


def read(pid: int | str = "self") -> ProcStat:
    """The process's figures now; raise ProcessLookupError if it is gone."""
    base = Path("/proc") / str(pid)
    try:
        return ProcStat(peak_rss_mb((base / "status").read_text()),
                        cpu_seconds((base / "stat").read_text()))
    except FileNotFoundError:
        raise ProcessLookupError(f"process {pid} is gone") from None


def read_tree(pid: int) -> ProcStat:
    """``read`` for a process and the children it spawned (a projector's workers): CPU time
    summed, the peak resident set of the largest; raise ProcessLookupError if it is gone."""
    base = Path("/proc") / str(pid)
    try:
        children = [int(c) for c in (base / "task" / str(pid) / "children").read_text().split()]
    except FileNotFoundError:
        raise ProcessLookupError(f"process {pid} is gone") from None
    stats: dict[int, str] = {}
    peak = read(pid).peak_rss_mb
    for child in children:
        try:
            stats[child] = (Path("/proc") / str(child) / "stat").read_text()
            peak = max(peak, read(child).peak_rss_mb)
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile: its time is in the parent's cutime now
    stats[pid] = (base / "stat").read_text()
    return ProcStat(peak, tree_cpu_seconds(pid, stats))
