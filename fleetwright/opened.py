"""Open a managed profile from Python and drive it with Playwright.

    async with fleetwright.open_profile("alice") as context:   # a Playwright BrowserContext
        page = await context.new_page()
        await page.goto("https://example.com")
    # here the state is saved as a new version and the profile released

    with fleetwright.open_profile_sync("alice") as context:    # the sync twin
        context.new_page().goto("https://example.com")

The context has the profile's fingerprint, proxy and saved state applied; the profile's lease
is held (and renewed) for the block. Leaving the block normally saves the state; leaving it
with an exception saves nothing, so the previous version stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from fleetwright.sessions.opener import OpenedProfile, open_session

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext
    from playwright.sync_api import BrowserContext as SyncBrowserContext

__all__ = ["open_profile", "open_profile_sync"]


class _Discard(Exception):
    """Raised into the opener so that it saves nothing (the caller's block failed)."""


@contextlib.asynccontextmanager
async def open_profile(
    name: str,
    *,
    headed: bool = False,
    port: int | None = None,
) -> AsyncIterator[BrowserContext]:
    """The profile's Playwright BrowserContext for the block; its state saved on a normal exit."""
    async with open_session(name, headed=headed, port=port) as opened:
        yield opened.context


@contextlib.contextmanager
def open_profile_sync(
    name: str,
    *,
    headed: bool = False,
    port: int | None = None,
) -> Iterator[SyncBrowserContext]:
    """The sync twin: the opener runs on a thread of its own; this thread drives the profile
    with Playwright's sync API over the opener's CDP endpoint."""
    from playwright.sync_api import sync_playwright

    ready: list[OpenedProfile] = []
    failure: list[BaseException] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    discard: list[bool] = []

    async def hold() -> None:
        async with open_session(name, headed=headed, port=port) as opened:
            ready.append(opened)
            started.set()
            opened.reason = await opened.wait()
            if discard:
                raise _Discard

    def run() -> None:
        try:
            loop.run_until_complete(hold())
        except _Discard:
            pass
        except BaseException as exc:
            failure.append(exc)
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=run, name=f"fleetwright-open-{name}", daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        raise failure[0]
    opened = ready[0]
    ok = False
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.connect_over_cdp(opened.ws_endpoint)
            try:
                yield browser.contexts[0]
                ok = True
            finally:
                browser.close()  # over CDP: disconnects, the profile's browser stays
    finally:
        if not ok:
            discard.append(True)
        loop.call_soon_threadsafe(opened.request_close)
        thread.join()
    if failure:
        raise failure[0]
