"""Prefect tasks over the catalogue: reconcile it with the blocks."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from fleetwright.registry.sync import SyncReport, reconcile_edits, sync_catalogue

__all__ = ["reconcile_catalogue", "reconcile_edited_blocks"]


def _log(report: SyncReport) -> dict[str, Any]:
    logger = get_run_logger()
    for key, values in report.as_dict().items():
        if isinstance(values, list) and values:
            logger.info("%s: %s", key.replace("_", " "), ", ".join(values[:50]))
    logger.info(
        "%d block(s) checked, %d block(s) written", report.blocks_checked, report.blocks_written
    )
    if report.invalid_blocks:
        logger.warning("%d blocks could not be applied", len(report.invalid_blocks))
    return report.as_dict()


@task(name="reconcile-catalogue", retries=2, retry_delay_seconds=5)
async def reconcile_catalogue() -> dict[str, Any]:
    """Every profile and proxy block against its row, then every pending block write."""
    return _log(await sync_catalogue())


@task(name="reconcile-edited-blocks", retries=2, retry_delay_seconds=5)
async def reconcile_edited_blocks(block_document_id: str) -> dict[str, Any]:
    """The blocks edited since the last pass (by Prefect's events), and this one."""
    return _log(await reconcile_edits(block_document_id))
