"""`fleetwright up` as a user runs it in a terminal, for tests: its own process group (a
terminal's foreground job), its output read line by line, stopped with Ctrl-C, and nothing it
started left behind if a test has to kill it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["UpProcess", "alive", "api_call", "console_script", "user_env"]

READY = "Fleetwright is up."
STOPPED = "Stopped everything"

Snapshot = list[tuple[int, float, str]]


def api_call(method: str, url: str, *, client: Any = None, **kw: Any) -> Any:
    """A Prefect API request whose JSON answer is returned, retried as Prefect's own client
    retries it: on 429, 502 and 503 (a busy server on SQLite answers 503 to a write it could
    not take in time), honouring Retry-After. Any other failure is an assertion naming it."""
    import httpx

    kw.setdefault("timeout", 30)
    for attempt in range(8):
        if client is None:
            resp = httpx.request(method, url, **kw)
        else:
            resp = client.request(method, url, **kw)
        if resp.status_code not in (429, 502, 503) or attempt == 7:
            break
        time.sleep(float(resp.headers.get("Retry-After") or 0) or 0.5 * 2**attempt)
    assert resp.is_success, f"{method} {url}: {resp.status_code} {resp.text[:500]}"
    return resp.json()


def console_script() -> list[str]:
    """This environment's `fleetwright` (what the README's set-up installs)."""
    script = Path(sys.executable).parent / "fleetwright"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from fleetwright.cli import main; main()"]


def user_env(home: Path, port: int | None = None, **extra: str) -> dict[str, str]:
    """A user's shell: none of the calling process's Prefect or Fleetwright settings, a home
    of its own and, with `port`, its own Prefect and demo-site ports."""
    from fleetwright.testing.proxies import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLEETWRIGHT_"))}
    env.update(
        FLEETWRIGHT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        COLUMNS="200",  # rich folds long lines (a run's URL) at 80 columns in a pipe
    )
    if port is not None:
        env.update(FLEETWRIGHT_PREFECT_PORT=str(port), FLEETWRIGHT_DEMO_SITE_PORT=str(free_port()))
    chromium = os.environ.get("FLEETWRIGHT_CHROMIUM_EXECUTABLE")
    if chromium:
        env["FLEETWRIGHT_CHROMIUM_EXECUTABLE"] = chromium
    env.update(extra)
    return env


def alive(snapshot: Snapshot) -> list[str]:
    """The processes of `snapshot` still running (same pid and start time, not a zombie)."""
    import psutil  # a test dependency (the dev extra), not Fleetwright's

    left = []
    for pid, created, name in snapshot:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{pid} {name}")
        except psutil.NoSuchProcess:
            continue
    return left


class UpProcess:
    """A running `fleetwright up` (argv given whole: the executable may be a venv's script)."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        cwd: Path | None = None,
        umask: int = -1,
    ) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=umask,
        )
        self.lines: list[str] = []
        self.snapshot: Snapshot = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def output(self, last: int = 40) -> str:
        return "\n".join(self.lines[-last:])

    def wait_up(self, timeout: float) -> None:
        """Until `up` prints that it is up; AssertionError with its output otherwise."""
        deadline = time.monotonic() + timeout
        while not any(READY in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("`fleetwright up` did not come up:\n" + self.output())
            time.sleep(0.5)

    def take_snapshot(self) -> Snapshot:
        """Remember every process `up` started (to check none outlives it, or to kill them)."""
        import psutil

        self.snapshot = [
            (p.pid, p.create_time(), " ".join(p.cmdline()[:4]))
            for p in psutil.Process(self.proc.pid).children(recursive=True)
        ]
        return self.snapshot

    def interrupt(self, *, times: int = 1, timeout: float = 180) -> int:
        """Ctrl-C to the whole foreground group (`times` presses, a second apart); its exit
        code. AssertionError, naming what still runs, if it has not ended within `timeout`."""
        for press in range(times):
            if press:
                time.sleep(1.0)
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"`fleetwright up` still running {timeout:.0f} s after Ctrl-C; still alive: "
                f"{alive(self.snapshot)}\n" + self.output()
            ) from None

    def stopped_cleanly(self, *, wait: float = 15) -> list[str]:
        """After it ended: whether it said it stopped everything, and what still runs."""
        self._reader.join(timeout=10)
        assert any(STOPPED in line for line in self.lines), self.output()
        deadline = time.monotonic() + wait
        while alive(self.snapshot) and time.monotonic() < deadline:
            time.sleep(0.5)
        return alive(self.snapshot)

    def kill(self) -> None:
        """SIGKILL `up` and every process group it started (a failed test leaves nothing)."""
        import psutil

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        if self.proc.returncode == 0:
            return
        for pid, created, _name in self.snapshot:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if psutil.Process(pid).create_time() == created:
                    os.killpg(os.getpgid(pid), signal.SIGKILL)

    def __enter__(self) -> UpProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
