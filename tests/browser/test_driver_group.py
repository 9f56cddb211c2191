"""A signal to the process group of a process running sessions (Prefect's worker cancelling a
flow run, Ctrl-C in a terminal) reaches that process only: the Playwright driver runs in a
session of its own, so the browsers stay up until the process stops its sessions itself.
When the process dies, even by SIGKILL, its driver and browsers go with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from fleetwright.testing.site import SiteServer

pytestmark = pytest.mark.browser

#: A process like a flow run's: a session holds a page open until SIGTERM, then the page is
#: used once more and the outcome printed.
_SCRIPT = """
import asyncio, signal, sys

from fleetwright.browser import BrowserPool, LaunchSpec
import fleetwright.browser.pool as pool_module

if sys.argv[2] == "in-group":
    pool_module.detach_driver = lambda: False

async def main() -> None:
    spec = LaunchSpec.model_validate({"profile_name": "sig", "restore_state": False})
    async with BrowserPool() as pool, pool.session(spec) as s:
        await s.page.goto(sys.argv[1] + "/table")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        try:
            rows = await s.page.locator("#products tbody tr").count()
            print(f"page alive {rows}", flush=True)
        except Exception as exc:
            print(f"page gone {type(exc).__name__}", flush=True)
            raise SystemExit(0)

asyncio.run(main())
"""


def _start(site: SiteServer, mode: str, tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "holder.py"
    script.write_text(_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), site.url, mode],
        stdout=subprocess.PIPE, text=True, start_new_session=True,  # a group of its own
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _family(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


@pytest.mark.parametrize(
    ("mode", "expected"), [("detached", "page alive 5"), ("in-group", "page gone")]
)
def test_sigterm_to_the_group_leaves_the_browser_to_the_process(
    home: Path, site: SiteServer, tmp_path: Path, mode: str, expected: str
) -> None:
    """With the driver detached the page is still usable after the group's SIGTERM; with the
    driver left in the group (the control), the same SIGTERM closes the browser under it."""
    proc = _start(site, mode, tmp_path)
    family = _family(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in family:
            if p.is_running():
                p.kill()
    assert out.strip().startswith(expected), out
    assert proc.returncode == 0


def test_sigkill_of_the_group_takes_driver_and_browser_along(
    home: Path, site: SiteServer, tmp_path: Path
) -> None:
    proc = _start(site, "detached", tmp_path)
    family = _family(proc.pid)
    names = {p.name() for p in family}
    assert any(n.startswith("node") for n in names), names
    assert any(n.startswith("chrom") for n in names), names
    driver = next(p for p in family if p.name().startswith("node"))
    assert os.getsid(driver.pid) != os.getsid(proc.pid)  # the driver runs in its own session
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while (left := [p for p in family if p.is_running() and p.status() != "zombie"]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    for p in left:
        p.kill()
    assert left == []
