"""Prefect tasks over the catalogue: reconcile it with the blocks."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from fleetwright.registry.sync import sync_catalogue

__all__ = ["reconcile_catalogue"]


@task(name="reconcile-catalogue", retries=2, retry_delay_seconds=5)
async def reconcile_catalogue() -> dict[str, Any]:
    """Bring catalogue rows in line with profile and proxy blocks; returns what changed."""
    logger = get_run_logger()
    report = await sync_catalogue()
    for key, values in report.as_dict().items():
        if values:
            logger.info("%s: %s", key.replace("_", " "), ", ".join(values[:50]))
    if report.invalid_blocks:
        logger.warning("%d blocks could not be applied", len(report.invalid_blocks))
    return report.as_dict()
