"""Which process wrote a metrics file, and whether it still runs.

Each process's files in the host's metrics folder are named by a process id made of its pid
and its start time (`12345-678901`), not the pid alone: a new process that is given the pid
of one that ended never writes into the files of the one that ended, and a file's process is
known to be gone even when its pid has been given to another process since.
"""

from __future__ import annotations

import os

__all__ = ["alive", "process_id"]

_ids: dict[int, str] = {}


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks after boot, Linux), None where /proc has none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (2nd field) is in parentheses and may hold spaces: count after it
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[19].decode()


def process_id() -> str:
    """This process's id in metrics file names (called on every recorded value: cached)."""
    pid = os.getpid()
    found = _ids.get(pid)
    if found is None:
        start = _start_time(pid)
        found = _ids[pid] = f"{pid}-{start}" if start is not None else str(pid)
    return found


def alive(ident: str) -> bool:
    """Whether the process a file names (`pid-start` or a bare pid) still runs."""
    pid_text, _, start = ident.partition("-")
    try:
        pid = int(pid_text)
    except ValueError:
        return False  # not a process (the folder's compacted archive, say): nobody runs it
    if start:
        now = _start_time(pid)
        if now is not None or os.path.isdir("/proc"):
            return now == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
