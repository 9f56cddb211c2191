"""An edit to a BrowserProfile block through the Prefect API (as the UI makes it) reaches the
catalogue through the sync-catalogue deployment's event trigger, with a real server and worker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentUpdate

from fleetwright.registry import add_profile, get_profile
from fleetwright.specs import validate_profile

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def _wait_for(check, *, timeout: float = 90) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"not reached within {timeout}s")


async def _patch_block(doc_id: str, changes: dict, fingerprint: dict | None = None) -> None:
    """As the UI's block form saves: the whole data, the fingerprint a nested object."""
    async with get_client() as client:
        doc = await client.read_block_document(UUID(doc_id), include_secrets=True)
        data = {**doc.data, **changes}
        if fingerprint:
            data["fingerprint"] = {**data["fingerprint"], **fingerprint}
        await client.update_block_document(
            UUID(doc_id), BlockDocumentUpdate(data=data, merge_existing_data=False)
        )


def test_ui_edit_reaches_catalogue_through_trigger(worker, home: Path) -> None:
    record = asyncio.run(add_profile(validate_profile({"name": "ui-edited", "tags": ["a"]})))
    worker("sync-catalogue")
    time.sleep(3)  # the worker's first poll; the trigger is live once the deployment exists

    asyncio.run(
        _patch_block(
            record["block_document_id"], {"tags": ["a", "b"]}, {"timezone": "America/New_York"}
        )
    )
    took = _wait_for(
        lambda: get_profile("ui-edited")["fingerprint"]["timezone"] == "America/New_York"
    )
    assert get_profile("ui-edited")["tags"] == ["a", "b"]
    print(f"block edit reached the catalogue in {took:.1f}s")

    # an invalid edit in the UI never corrupts the row
    asyncio.run(_patch_block(record["block_document_id"], {}, {"timezone": "Not/AZone"}))
    time.sleep(12)
    assert get_profile("ui-edited")["fingerprint"]["timezone"] == "America/New_York"

    # deleting the block in the UI archives the profile (state and history are kept)
    async def delete() -> None:
        async with get_client() as client:
            await client.delete_block_document(UUID(record["block_document_id"]))

    asyncio.run(delete())
    _wait_for(lambda: get_profile("ui-edited")["status"] == "archived")
