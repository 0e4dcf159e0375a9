"""What the benchmarks share about processes: CPU time of a process group, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path


def group_cpu_seconds(pgid: int) -> float:
    """CPU time used so far by the processes of group ``pgid`` (a server and its workers, and
    the children they reaped), from /proc/PID/stat."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        # After the command: state ppid pgrp ... utime stime cutime cstime at 11..14 (proc(5)).
        if int(fields[2]) == pgid:
            ticks += sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")
