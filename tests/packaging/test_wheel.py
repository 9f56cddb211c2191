"""The built wheel as a user installs it: only `fleetwright` lands in site-packages, and
`fleetwright up` from an empty folder deploys prefect.yaml from the installed package, runs a
deployment's flow from it, and stops everything on Ctrl-C.

The fresh virtualenv gets the wheel alone (`--no-deps`); its dependencies come from this
environment's site-packages through a path entry added after the install, so they sit after
the wheel's own `fleetwright` on sys.path. A full install of requirements.lock into a fresh
venv took 275 s from the warm pip cache here, against ~15 s for this; scripts/setup.sh is the
path that installs from the lock.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from fleetwright.testing.proxies import free_port
from fleetwright.testing.up import UpProcess, api_call, user_env

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT_S = 420
ALLOWED = {"fleetwright"}
DEPLOYMENTS = {"sync-catalogue", "check-proxies", "run-command", "run-command-resume", "warm-up"}
_SKIP = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests", "results"
)


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=_SKIP)  # build/ stays out of the checkout
    out = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("fleetwright-*.whl")
    return wheel


def _venv_with(wheel: Path, tmp: Path) -> tuple[Path, Path]:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    return python, site


def _with_home(home: Path) -> list[str]:
    """Processes whose environment names `home` (everything `up` started inherits it)."""
    found = []
    needle = f"FLEETWRIGHT_HOME={home}"
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            environ = proc.environ()
            if f"FLEETWRIGHT_HOME={environ.get('FLEETWRIGHT_HOME')}" == needle:
                found.append(f"{proc.pid} {' '.join(proc.info['cmdline'][:4])}")
    return found


def _api(home: Path, port: int, method: str, path: str, **kw: Any) -> Any:
    """A request with the credential `up` generated into the home (its server asks for it)."""
    auth = (home / "prefect-api-auth").read_text().strip()
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    return api_call(method, f"http://127.0.0.1:{port}/api{path}", headers=headers, **kw)


def test_the_wheel_installs_only_fleetwright_and_up_runs_from_an_empty_folder(
    tmp_path: Path,
) -> None:
    wheel = _build_wheel(tmp_path)
    python, site = _venv_with(wheel, tmp_path)
    installed = {p.name for p in site.iterdir() if not p.name.endswith(".dist-info")}
    installed -= {"__pycache__", "_distutils_hack", "distutils-precedence.pth"}
    assert installed == ALLOWED, sorted(installed)
    project = site / "fleetwright" / "project"
    assert (project / "prefect.yaml").is_file() and not (project / "prefect.yaml").is_symlink()
    assert sorted(p.name for p in (project / "commands").iterdir()) == [
        "demo.yaml", "products-report.yaml", "warm-up.yaml",
    ]  # fmt: skip
    assert not (site / "fleetwright" / "bench").exists()
    shipped = sorted(project.rglob("*"))
    # the dependencies: this environment's packages, after (never instead of) the wheel's own
    (site / "zz-fleetwright-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    where = subprocess.run(
        [str(python), "-c", "import fleetwright.flows.run_command as m; print(m.__file__)"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(site)), where

    empty = tmp_path / "empty"
    empty.mkdir()
    home = tmp_path / "home"
    port = free_port()
    env = user_env(home, port, PYTHONPATH="")
    argv = [str(python.parent / "fleetwright"), "up", "--no-demo", "--port", str(port)]
    with UpProcess(argv, env, cwd=empty) as up:
        up.wait_up(UP_TIMEOUT_S)
        deadline = time.monotonic() + UP_TIMEOUT_S
        found = _api(home, port, "POST", "/deployments/filter", json={})
        entrypoints = {d["name"]: d["entrypoint"] for d in found}
        assert set(entrypoints) == DEPLOYMENTS, entrypoints
        assert all(e.startswith("fleetwright.flows.") for e in entrypoints.values()), entrypoints
        # a deployment's flow runs on the process worker, loaded from the installed package
        check = next(d for d in found if d["name"] == "check-proxies")
        run = _api(home, port, "POST", f"/deployments/{check['id']}/create_flow_run", json={})
        state = None
        while time.monotonic() < deadline:
            state = (_api(home, port, "GET", f"/flow_runs/{run['id']}").get("state") or {}).get(
                "type"
            )
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(1)
        assert state == "COMPLETED", f"check-proxies run ended {state}:\n" + "\n".join(up.lines)
        names = " | ".join(s[2] for s in up.take_snapshot())
        assert "server" in names and "worker" in names, names
        assert up.interrupt() == 0, up.output()
    assert up.stopped_cleanly() == []
    deadline = time.monotonic() + 15
    while _with_home(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _with_home(home) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
    assert list(empty.iterdir()) == [], "`up` wrote into the working directory"
    assert sorted(project.rglob("*")) == shipped, "`up` wrote into the installed package"
