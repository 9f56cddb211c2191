"""Whole-system fixtures: deployments from prefect.yaml and a real process worker."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def worker(prefect_api: str, home: Path) -> Iterator[Callable[..., None]]:
    """Deploy the named prefect.yaml deployments, then start a process worker for them."""
    from fleetwright.embedded.stack import deploy_project, start_worker, stop_process

    procs = []

    def start(*names: str, env: dict[str, str] | None = None) -> None:
        full = {"FLEETWRIGHT_HOME": os.environ["FLEETWRIGHT_HOME"], **(env or {})}
        deploy_project(full, names=list(names))
        procs.append(start_worker(full, log_path=home / "logs" / "worker.log"))

    yield start
    for p in procs:
        stop_process(p)
