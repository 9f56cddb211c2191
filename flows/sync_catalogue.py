"""The `sync-catalogue` flow: edits made to blocks in the Prefect UI reach the catalogue.

Deployed with a trigger on `prefect.block-document.*` events of Fleetwright's block types (see
prefect.yaml) and on a slow schedule as a safety net; it can also be run by hand.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from fleetwright.tasks.catalogue import reconcile_catalogue

__all__ = ["sync_catalogue_flow"]


@flow(name="sync-catalogue", log_prints=False)
async def sync_catalogue_flow(block_document_id: str | None = None) -> dict[str, Any]:
    """Reconcile every profile and proxy block with its catalogue row.

    `block_document_id` names the block whose event started the run (for the record): the
    reconcile always covers every block, so edits that arrive while it runs are not lost.
    """
    return await reconcile_catalogue()
