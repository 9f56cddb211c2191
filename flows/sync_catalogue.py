"""The `sync-catalogue` flow: edits made to blocks in the Prefect UI reach the catalogue.

Deployed with a trigger on `prefect.block-document.*` events of Fleetwright's block types (see
prefect.yaml) and on a slow schedule as a safety net; it can also be run by hand.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from fleetwright.tasks.catalogue import reconcile_catalogue, reconcile_edited_blocks

__all__ = ["sync_catalogue_flow"]


@flow(name="sync-catalogue", log_prints=False)
async def sync_catalogue_flow(block_document_id: str | None = None) -> dict[str, Any]:
    """Reconcile what was edited, or everything.

    Triggered by a block event (`block_document_id` set): the blocks edited since the last
    such run, by id, plus that one; its cost follows the edits, not the fleet. Without it (the
    schedule, a run by hand): every profile and proxy block against every row, then every
    pending block write.
    """
    if block_document_id:
        return await reconcile_edited_blocks(block_document_id)
    return await reconcile_catalogue()
