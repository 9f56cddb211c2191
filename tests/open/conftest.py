"""Fixtures for opened profiles: the demo site, profiles, the CLI as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetwright.testing.site import SiteServer, serve_site

FLEETWRIGHT = [str(Path(sys.executable).parent / "fleetwright")]

#: reads back what an external tool wrote: the demo site's /storage page shows its cookie
#: (fw_js), localStorage ("fw") and IndexedDB (database fw, store kv, key fw)
READ_STORAGE = """\
name: read-storage
version: "1"
params:
  base_url: {type: str}
steps:
  - goto: "{{ params.base_url }}/storage"
  - assert: {text: {selector: "#status", equals: "ready"}}
  - extract: {id: cookie, selector: "#cookie"}
  - extract: {id: local, selector: "#local", allow_empty: true}
  - extract: {id: idb, selector: "#idb", allow_empty: true}
"""


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with serve_site() as server:
        yield server


@pytest.fixture
def make_profile(prefect_api: str, home: Path) -> Callable[..., str]:
    """Create one profile (block + row) through the registry, with the Secret block the demo
    command reads its site password from."""
    from fleetwright.embedded.demo import store_demo_passwords
    from fleetwright.registry import import_profiles

    def make(name: str, **fields: Any) -> str:
        report = asyncio.run(import_profiles([(name, {"name": name, "tags": ["open"], **fields})]))
        assert not report.errors, report.errors
        asyncio.run(store_demo_passwords([name]))
        return name

    return make


class Opener:
    """`fleetwright profile open NAME --json` running as its own process."""

    def __init__(self, name: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*FLEETWRIGHT, "profile", "open", name, "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"open failed: {err}")
        self.opened: dict[str, Any] = json.loads(line)
        self.ws = str(self.opened["ws_endpoint"])

    def finish(self, timeout: float = 60) -> tuple[int, dict[str, Any], str]:
        out, err = self.proc.communicate(timeout=timeout)
        closed = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        return self.proc.returncode, closed, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def open_profile_proc() -> Iterator[Callable[..., Opener]]:
    started: list[Opener] = []

    def start(name: str, *args: str) -> Opener:
        opener = Opener(name, *args)
        started.append(opener)
        return opener

    yield start
    for opener in started:
        opener.kill()


@pytest.fixture
def fleetwright() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `fleetwright ARGS...` as a process of its own."""

    def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*FLEETWRIGHT, *args], capture_output=True, text=True, timeout=timeout,
            env=dict(os.environ),
        )  # fmt: skip

    return run


@pytest.fixture
def read_back(tmp_path: Path, site: SiteServer) -> Callable[[str], dict[str, str]]:
    """Run the read-storage command on a profile through the run-command flow (locally)."""

    def read(name: str) -> dict[str, str]:
        from fleetwright.commands import load_commands
        from fleetwright.flows.run_command import run_command

        folder = tmp_path / "commands"
        folder.mkdir(exist_ok=True)
        (folder / "read-storage.yaml").write_text(READ_STORAGE)
        load_commands([folder])
        state = asyncio.run(
            run_command(
                command="read-storage",
                profiles=[name],
                params={"base_url": site.url},
                return_state=True,
            )
        )
        assert state.is_completed(), state.message
        from sqlalchemy import select

        from fleetwright.catalogue.db import session_scope
        from fleetwright.catalogue.models import Run

        with session_scope() as s:
            run = s.scalars(
                select(Run).where(Run.profile_name == name).order_by(Run.id.desc())
            ).first()
            assert run is not None and run.status == "ok", run and run.error
            return {k: str(run.outputs[k]["text"]) for k in ("cookie", "local", "idb")}

    return read


@pytest.fixture
def worker(prefect_api: str, home: Path) -> Iterator[Callable[..., None]]:
    """Deploy the named prefect.yaml deployments, then start a process worker for them."""
    from fleetwright.embedded.stack import deploy_project, start_worker, stop_process

    procs = []

    def start(*names: str) -> None:
        env = {"FLEETWRIGHT_HOME": os.environ["FLEETWRIGHT_HOME"]}
        deploy_project(env, names=list(names))
        procs.append(start_worker(env, log_path=home / "logs" / "worker.log"))

    yield start
    for p in procs:
        stop_process(p)
