"""Child processes in their own process group: started with a log file, stopped with all
they started. Shared by the embedded stack and the test site; no Prefect here."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import BinaryIO

from fleetwright.private import PRIVATE_FILE_MODE, PRIVATE_UMASK, private_dir

__all__ = ["open_log", "start_process", "stop_process"]


def open_log(path: Path) -> BinaryIO:
    """`path` opened for appending, created 0600 (in a 0700 folder) if it is new."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "ab")


def start_process(
    cmd: list[str], env: dict[str, str], *, log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """A child in its own process group, logging to `log_path` (env added to ours).

    The child runs with a private umask: what it creates is readable by its owner only.
    """
    with open_log(log_path) as log:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )


def stop_process(proc: subprocess.Popen[bytes] | None, *, timeout: float = 15) -> None:
    """Stop a child started in its own process group, and everything it started."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"process {proc.pid} did not exit after SIGKILL") from None
