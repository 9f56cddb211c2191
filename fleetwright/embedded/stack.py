"""The local stack `fleetwright up` runs: Prefect server, blocks, deployments, worker, demo.

Each piece is a function so tests can start exactly the parts they need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from fleetwright.errors import ConfigurationError, PrefectUnavailableError

__all__ = [
    "PROJECT_DIR",
    "WORK_POOL",
    "deploy_project",
    "ensure_work_pool",
    "register_blocks",
    "start_process",
    "start_worker",
    "stop_process",
]

logger = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parents[2]
WORK_POOL = "fleetwright"


async def register_blocks() -> list[str]:
    """Register Fleetwright's block types and schemas with the Prefect API (idempotent)."""
    from fleetwright.blocks import BLOCK_TYPES
    from fleetwright.registry.blockstore import open_block_store

    async with open_block_store() as store:
        for cls in BLOCK_TYPES:
            await store._type_ids(cls)
    return [cls.get_block_type_slug() for cls in BLOCK_TYPES]


async def ensure_work_pool(name: str = WORK_POOL) -> None:
    """A process work pool named `name` (created if missing)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def _prefect_file() -> Path:
    path = PROJECT_DIR / "prefect.yaml"
    if not path.exists():
        raise ConfigurationError(
            f"prefect.yaml not found at {path}; run Fleetwright from its project folder"
        )
    return path


def deploy_project(env: dict[str, str], *, names: list[str] | None = None) -> None:
    """`prefect deploy` the project's prefect.yaml (all deployments, or the named ones)."""
    asyncio.run(ensure_work_pool())
    cmd = [
        sys.executable,
        "-m",
        "prefect",
        "--no-prompt",
        "deploy",
        "--prefect-file",
        str(_prefect_file()),
    ]
    if names:
        for n in names:
            cmd += ["--name", n]
    else:
        cmd.append("--all")
    full_env = {**os.environ, **env, "FLEETWRIGHT_PROJECT_DIR": str(PROJECT_DIR)}
    result = subprocess.run(
        cmd, cwd=PROJECT_DIR, env=full_env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise PrefectUnavailableError(
            f"deploying prefect.yaml failed (exit {result.returncode}): {' | '.join(tail)}",
            retryable=False,
        )


def start_process(
    cmd: list[str], env: dict[str, str], *, log_path: Path
) -> subprocess.Popen[bytes]:
    """A child in its own process group, logging to `log_path`, in the project folder."""
    full_env = {**os.environ, **env, "FLEETWRIGHT_PROJECT_DIR": str(PROJECT_DIR)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd,
            cwd=PROJECT_DIR,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_worker(
    env: dict[str, str], *, log_path: Path, pool: str = WORK_POOL, query_seconds: float = 2
) -> subprocess.Popen[bytes]:
    """A process worker for `pool`, in its own process group."""
    return start_process(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"],
        {**env, "PREFECT_WORKER_QUERY_SECONDS": str(query_seconds)},
        log_path=log_path,
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
