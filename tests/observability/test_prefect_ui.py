"""A real browser on the Prefect UI: a fleet run's page shows its progress artifact, the failed
profile's screenshot and trace links, and the failover log line."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


async def _artifacts(flow_run_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        return list(
            await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])
                )
            )
        )


def test_fleet_run_page_shows_progress_failure_files_and_failover(
    small_fleet, prefect_api: str, prefect_auth: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    state = small_fleet.run()
    assert state.is_failed()
    flow_run_id = str(state.state_details.flow_run_id)
    deadline = time.monotonic() + 30
    while True:  # artifacts and logs reach the API in batches
        artifacts = asyncio.run(_artifacts(flow_run_id))
        if len([a for a in artifacts if a.type in ("progress", "markdown")]) >= 2:
            break
        assert time.monotonic() < deadline, artifacts
        time.sleep(0.5)
    failure = next(a for a in artifacts if a.type == "markdown")
    assert failure.description and small_fleet.bad in failure.description
    ui = prefect_api.removesuffix("/api")
    executable = os.environ.get("FLEETWRIGHT_CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            # the server asks for its credential (as `fleetwright up`'s does): log in first
            page.goto(f"{ui}/dashboard", wait_until="networkidle", timeout=90_000)
            password = page.locator("input[type=password]")
            password.fill(prefect_auth, timeout=60_000)
            password.press("Enter")
            password.wait_for(state="detached", timeout=60_000)
            page.goto(f"{ui}/runs/flow-run/{flow_run_id}")
            # the failover, on the run's Logs tab (the default one)
            expect(
                page.get_by_text("fails over from quarantined proxy mon-a to mon-b")
            ).to_be_visible(timeout=60_000)
            # the progress artifact, on its Artifacts tab
            page.get_by_text("Artifacts", exact=True).click()
            expect(page.get_by_text("mon-check: sessions finished")).to_be_visible(timeout=30_000)
            expect(
                page.get_by_text(f"{small_fleet.bad} failed (AssertionStepError)")
            ).to_be_visible(timeout=30_000)
            # the failed profile's files, linked from its artifact's page
            page.get_by_text(f"{small_fleet.bad} failed (AssertionStepError)").click()
            links = page.locator('a[href^="file://"]')
            expect(links.first).to_be_visible(timeout=30_000)
            hrefs = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
            assert any(h.endswith(".png") for h in hrefs), hrefs
            assert any("trace" in h and h.endswith(".zip") for h in hrefs), hrefs
        except Exception:
            page.screenshot(path=str(tmp_path / "ui.png"), full_page=True)
            print(f"screenshot: {tmp_path / 'ui.png'}")
            raise
        finally:
            browser.close()
