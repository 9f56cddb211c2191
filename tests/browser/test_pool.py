"""BrowserPool: sessions close on success, failure, cancellation, timeout and crashes, and no
Chromium process outlives them (checked in the process table)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from fleetwright.browser import BrowserPool, LaunchSpec
from fleetwright.browser.procs import ProcessWatch
from fleetwright.errors import (
    BrowserCrashError,
    NavigationTimeoutError,
    NotFoundError,
    SessionError,
    StepError,
)
from fleetwright.testing.site import SiteServer

pytestmark = pytest.mark.browser


def scratch(name: str, **extra: object) -> LaunchSpec:
    return LaunchSpec.model_validate({"profile_name": name, "restore_state": False, **extra})


async def wait_gone(watch: ProcessWatch, *, seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := watch.survivors()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return left


async def test_success_closes_context_and_pool_close_kills_all(
    pool: BrowserPool, watch: ProcessWatch, site: SiteServer
) -> None:
    async with pool.session(scratch("ok")) as s:
        await s.page.goto(f"{site.url}/table")
        assert await s.page.locator("#products tbody tr").count() == 5
        watch.snapshot()
        context = s.context
    assert s.closed and not s.failed
    assert context.pages == []
    assert len(watch.seen) >= 2  # the browser and at least one child
    assert pool.browser_pids(), "the shared browser stays up for the next session"
    await pool.close()
    assert await wait_gone(watch) == []


async def test_failure_takes_screenshot_and_closes(
    pool: BrowserPool, watch: ProcessWatch, site: SiteServer
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with pool.session(scratch("fails")) as s:
            await s.page.goto(f"{site.url}/login")
            watch.snapshot()
            raise RuntimeError("boom")
    assert s.failed and s.closed
    shot = s.artifact_paths["failure"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.parent.parent == pool.settings.home / "artifacts"
    await pool.close()
    assert await wait_gone(watch) == []


async def test_cancellation_closes_everything(
    pool: BrowserPool, watch: ProcessWatch, site: SiteServer
) -> None:
    entered = asyncio.Event()
    holder: dict[str, object] = {}

    async def run() -> None:
        async with pool.session(scratch("cancelled")) as s:
            holder["s"] = s
            await s.page.goto(f"{site.url}/table")
            watch.snapshot()
            entered.set()
            await s.page.goto(f"{site.url}/slow?ms=20000")

    task = asyncio.create_task(run())
    await asyncio.wait_for(entered.wait(), 30)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    session = holder["s"]
    assert session.closed is True
    assert session.context.pages == []
    await pool.close()
    assert await wait_gone(watch) == []


async def test_session_timeout_raises_retryable_session_error(
    pool: BrowserPool, watch: ProcessWatch, site: SiteServer
) -> None:
    with pytest.raises(SessionError, match="over its 1 s limit") as info:
        async with pool.session(scratch("slowpoke"), timeout=timedelta(seconds=1)) as s:
            watch.snapshot()
            await s.page.goto(f"{site.url}/slow?ms=10000")
    assert info.value.retryable
    assert s.closed
    await pool.close()
    assert await wait_gone(watch) == []


async def test_navigation_timeout_maps_to_navigation_timeout_error(
    pool: BrowserPool, site: SiteServer
) -> None:
    with pytest.raises(NavigationTimeoutError, match="did not load in time") as info:
        async with pool.session(scratch("navslow")) as s:
            await s.page.goto(f"{site.url}/slow?ms=5000", timeout=300)
    assert info.value.retryable
    assert "failure" in s.artifact_paths


async def test_missing_selector_maps_to_step_error(pool: BrowserPool, site: SiteServer) -> None:
    with pytest.raises(StepError, match="timed out waiting"):
        async with pool.session(scratch("nosel")) as s:
            await s.page.goto(f"{site.url}/table")
            await s.page.click("#does-not-exist", timeout=300)
    assert "failure" in s.artifact_paths


@pytest.mark.parametrize("mode", ["storage", "persistent"])
async def test_killed_browser_raises_crash_error_and_leaves_no_orphans(
    pool: BrowserPool,
    watch: ProcessWatch,
    site: SiteServer,
    make_profile: Callable[..., str],
    mode: str,
) -> None:
    name = make_profile(f"crash-{mode}", state_mode=mode)
    with pytest.raises(BrowserCrashError) as info:
        async with pool.session(LaunchSpec(profile_name=name, state_mode=mode)) as s:
            await s.page.goto(f"{site.url}/table")
            watch.snapshot()
            (main,) = pool.browser_pids()
            os.kill(main, signal.SIGKILL)
            await asyncio.sleep(0.3)
            await s.page.goto(f"{site.url}/login")
    assert info.value.retryable
    assert s.crashed
    assert await wait_gone(watch) == [], "nothing of the killed browser survives"
    # the pool recovers: the next session gets a fresh browser
    async with pool.session(scratch("after-crash")) as s2:
        await s2.page.goto(f"{site.url}/table")
        assert await s2.page.title() == "Products"
        watch.snapshot()
    await pool.close()
    assert await wait_gone(watch) == []


async def test_page_crash_raises_crash_error(pool: BrowserPool, site: SiteServer) -> None:
    with pytest.raises(BrowserCrashError):
        async with pool.session(scratch("pagecrash")) as s:
            await s.page.goto(f"{site.url}/table")
            cdp = await s.context.new_cdp_session(s.page)
            with contextlib.suppress(Exception):  # the renderer dies before it answers
                await asyncio.wait_for(cdp.send("Page.crash"), 5)
            await s.page.goto(f"{site.url}/login")
    assert s.crashed


async def test_recycles_browser_after_contexts_per_browser(home: object, site: SiteServer) -> None:
    pool = BrowserPool(browsers=1, contexts_per_browser=2)
    watch = ProcessWatch(pool.browser_pids)
    try:
        pids = []
        for i in range(3):
            async with pool.session(scratch(f"recycle-{i}")) as s:
                await s.page.goto(f"{site.url}/")
                pids.append(pool.browser_pids()[0])
                watch.snapshot()
        assert pids[0] == pids[1] != pids[2]
        assert pool.launched == 2
        first = ProcessWatch(pool.browser_pids)
        first.seen = {pids[0]: watch.seen[pids[0]]}
        assert await wait_gone(first) == [], "the drained browser was closed"
    finally:
        await pool.close()
    assert await wait_gone(watch) == []


async def test_spreads_concurrent_sessions_over_browsers(home: object, site: SiteServer) -> None:
    pool = BrowserPool(browsers=2)
    try:
        async with (
            pool.session(scratch("a")) as a,
            pool.session(scratch("b")) as b,
            pool.session(scratch("c")) as c,
        ):
            for s in (a, b, c):
                await s.page.goto(f"{site.url}/")
            assert len(pool.browser_pids()) == 2
            loads = sorted(pool.browser_loads())
            assert loads == [1, 2]
            assert a.context.browser is not b.context.browser
    finally:
        await pool.close()


async def test_closed_pool_refuses_sessions(pool: BrowserPool) -> None:
    await pool.close()
    with pytest.raises(SessionError, match="closed"):
        async with pool.session(scratch("late")):
            pass


async def test_unknown_profile_fails_before_launching(pool: BrowserPool) -> None:
    with pytest.raises(NotFoundError, match="'ghost' is not in the catalogue"):
        async with pool.session(LaunchSpec(profile_name="ghost")):
            pass
    assert pool.launched == 0


async def test_scratch_session_cannot_save_state(pool: BrowserPool, site: SiteServer) -> None:
    with pytest.raises(SessionError, match="restore_state=False"):
        async with pool.session(scratch("scratchy")) as s:
            await s.page.goto(f"{site.url}/")
            await s.save_state()
