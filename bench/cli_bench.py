"""The CLI as users start it: whole processes, from exec to exit, beside their floors.

- `cli_help_ms`: `fleetwright --help`; baselines `python -c pass` (the interpreter alone) and
  `prefect --help` (Prefect's own CLI).
- `cli_group_help_ms`: `fleetwright profile --help` (a command group's help).
- `profile_add_ms`: `fleetwright profile add NAME` with the Prefect server running (a
  BrowserProfile block, a catalogue row, a Prefect event); baseline `python -c "import
  prefect.client.orchestration"`: importing the Prefect client, the floor of a command that
  writes its block through the client (the CLI writes it over the REST API instead,
  registry/direct.py).
- `run_now_cli_ms`: `fleetwright run bench-login NAME --now --json` with the Prefect server and a
  warm worker up, from exec to the result printed (the bench command on the 0 ms bench site);
  baseline the same session submitted in process (`apply_async` → result back), the work the
  command waits for.

The samples alternate between the sides, so that load on the machine hits both alike.
`profile_add_ms` also carries `phases`: the same work done step by step in a process of its
own (interpreter and CLI start, Fleetwright's registry import, the catalogue's migration check,
the row, block and event writes), median ms of each, to show where the time goes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.harness import Bench
from bench.stats import Figure, summary

__all__ = ["FIGURES", "run"]

FIGURES = ("cli_help_ms", "cli_group_help_ms", "profile_add_ms", "run_now_cli_ms")


def _exe(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _timed(argv: list[str], env: dict[str, str]) -> float:
    """Milliseconds from starting `argv` to its exit; it must exit 0."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=300, check=False)
    ms = (time.perf_counter() - t0) * 1000
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"{' '.join(argv[:3])} exited {done.returncode}: {tail}")
    return ms


def _sides(sides: dict[str, list[str]], n: int, env: dict[str, str]) -> dict[str, list[float]]:
    """n samples of each command, alternating (after one unmeasured warm-up each)."""
    for argv in sides.values():
        _timed(argv, env)
    out: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(n):
        order = list(sides.items())
        for name, argv in order if i % 2 == 0 else reversed(order):
            out[name].append(_timed(argv, env))
    return out


_PHASES = """
import sys, time
t0 = time.perf_counter()
marks = []
def mark(name):
    marks.append((name, (time.perf_counter() - t0) * 1000))
import fleetwright.cli.main, fleetwright.cli.profile
from fleetwright.settings import apply_prefect_settings
apply_prefect_settings(); mark("cli_start")
from fleetwright.registry.profiles import add_profile; mark("registry_import")
from fleetwright.catalogue.db import get_engine
get_engine(); mark("catalogue_migration_check")
import asyncio
from fleetwright.specs import validate_profile
record = asyncio.run(add_profile(validate_profile({"name": sys.argv[1]}), direct=True))
mark("row_block_and_event")
assert "prefect" not in sys.modules and not record["block_pending"], "not the direct path"
last = 0.0
for name, at in marks:
    print(name, at - last)
    last = at
"""


def _phases(name: str, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _PHASES, name], env=env, capture_output=True, timeout=300,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"the profile-add phases exited {done.returncode}: {tail}")
    out = {}
    for line in done.stdout.decode().splitlines():
        key, _, ms = line.partition(" ")
        out[key] = float(ms)
    return out


def _cli_env() -> dict[str, str]:
    """The bench's environment with Fleetwright's settings only: the CLI applies them."""
    return {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}


async def run(bench: Bench) -> dict[str, Figure]:
    from fleetwright.catalogue.db import upgrade
    from fleetwright.embedded.stack import register_blocks

    n = bench.sizes.cli_n
    env = _cli_env()
    fw = _exe("fleetwright")
    helps = _sides(
        {
            "fleetwright": [fw, "--help"],
            "group": [fw, "profile", "--help"],
            "python": [sys.executable, "-c", "pass"],
            "prefect": [_exe("prefect"), "--help"],
        },
        n,
        env,
    )
    figures: dict[str, Figure] = {
        "cli_help_ms": summary(
            helps["fleetwright"],
            "ms",
            baseline=summary(helps["python"], "ms") | {"name": "python -c pass"},
            prefect_help=summary(helps["prefect"], "ms") | {"name": "prefect --help"},
        ),
        "cli_group_help_ms": summary(
            helps["group"],
            "ms",
            baseline=summary(helps["python"], "ms") | {"name": "python -c pass"},
        ),
    }

    bench.prefect()
    await register_blocks()
    await asyncio.to_thread(upgrade)
    run_tag = uuid.uuid4().hex[:6]
    adds: dict[str, list[float]] = {"add": [], "client": []}
    client_argv = [sys.executable, "-c", "import prefect.client.orchestration"]
    _timed([fw, "profile", "add", f"cli-{run_tag}-warm"], env)
    _timed(client_argv, env)
    for i in range(n):
        add_argv = [fw, "profile", "add", f"cli-{run_tag}-{i}"]
        for name, argv in (
            (("add", add_argv), ("client", client_argv))
            if i % 2 == 0
            else (("client", client_argv), ("add", add_argv))
        ):
            adds[name].append(_timed(argv, env))
    runs = [_phases(f"cli-{run_tag}-ph{i}", env) for i in range(max(1, n // 2))]
    phases = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
    figures["profile_add_ms"] = summary(
        adds["add"],
        "ms",
        baseline=summary(adds["client"], "ms")
        | {"name": "python -c 'import prefect.client.orchestration'"},
        phases=phases,
    )
    figures["run_now_cli_ms"] = await _run_now(bench, fw, env, run_tag)
    return figures


async def _in_process_session(name: str, command: object, base_url: str) -> float:
    """Milliseconds from apply_async to the result back, in this (warm) process."""
    from fleetwright.fleet.warm import session_result
    from fleetwright.tasks.sessions import run_profile_session

    t0 = time.perf_counter()
    future = await asyncio.to_thread(
        run_profile_session.apply_async,
        args=(name, command),
        kwargs={"params": {"base_url": base_url}, "fleet_run_id": "bench-cli-now"},
    )
    result = await session_result(future, timeout=300)
    if result["status"] != "ok":
        raise RuntimeError(f"warm session ended {result['status']}: {result.get('error')}")
    return (time.perf_counter() - t0) * 1000


async def _run_now(bench: Bench, fw: str, env: dict[str, str], run_tag: str) -> Figure:
    from datetime import timedelta

    from bench.workload import load_bench_command
    from fleetwright.embedded.stack import stop_process
    from fleetwright.fleet.warm import await_warm_worker

    command = load_bench_command(bench.root / "commands")
    site = bench.site(0)
    [name] = bench.profiles(1, prefix=f"cli-now-{run_tag}")
    worker = bench.start_warm_worker()
    try:
        await await_warm_worker(timeout=timedelta(seconds=120))
        argv = [fw, "run", "bench-login", name, "--now", "--json", "-p", f"base_url={site.url}"]
        await asyncio.to_thread(_timed, argv, env)  # warms the worker's browser
        sides: dict[str, list[float]] = {"cli": [], "in_process": []}
        for i in range(bench.sizes.cli_n):
            for side in ("cli", "in_process") if i % 2 == 0 else ("in_process", "cli"):
                if side == "cli":
                    sides[side].append(await asyncio.to_thread(_timed, argv, env))
                else:
                    sides[side].append(await _in_process_session(name, command, site.url))
    finally:
        await asyncio.to_thread(stop_process, worker)
    return summary(
        sides["cli"],
        "ms",
        baseline=summary(sides["in_process"], "ms")
        | {"name": "apply_async → result, in a warm process"},
    )
