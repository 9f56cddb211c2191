"""fleetwright.open_profile (async) and open_profile_sync: a Playwright context with the
profile applied, saved on a normal exit; a failed block or a crashed browser saves nothing."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

import fleetwright
from fleetwright.browser.state import StateStore
from fleetwright.errors import NotFoundError, ValidationError
from fleetwright.sessions.opener import open_session

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


def _cookie(name: str) -> str | None:
    state = StateStore().load(name)
    assert state is not None
    return next((c["value"] for c in state.storage["cookies"] if c["name"] == "fw_js"), None)


def test_async_and_sync_open_profile(make_profile, site) -> None:
    name = make_profile("py-alice", fingerprint={"timezone": "Asia/Tokyo", "locale": "de-DE"})

    async def first() -> tuple[str, str]:
        async with fleetwright.open_profile(name) as context:
            page = await context.new_page()
            await page.goto(f"{site.url}/storage?write=async-value")
            await page.wait_for_selector("#status:text('ready')")
            zone = await page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
            lang = await page.evaluate("navigator.language")
        return zone, lang

    assert asyncio.run(first()) == ("Asia/Tokyo", "de-DE")
    assert StateStore().current_version(name) == 1
    assert _cookie(name) == "async-value"

    with fleetwright.open_profile_sync(name) as context:
        page = context.new_page()
        page.goto(f"{site.url}/storage")
        page.wait_for_selector("#status:text('ready')")
        seen = {k: page.inner_text(f"#{k}") for k in ("cookie", "local", "idb")}
        page.goto(f"{site.url}/storage?write=sync-value")
        page.wait_for_selector("#status:text('ready')")
    assert seen == {"cookie": "async-value", "local": "async-value", "idb": "async-value"}
    assert StateStore().current_version(name) == 2
    assert _cookie(name) == "sync-value"

    # a failing block saves nothing: the previous version stays
    with pytest.raises(RuntimeError, match="boom"), fleetwright.open_profile_sync(name) as context:
        page = context.new_page()
        page.goto(f"{site.url}/storage?write=lost-value")
        page.wait_for_selector("#status:text('ready')")
        raise RuntimeError("boom")
    assert StateStore().current_version(name) == 2
    assert _cookie(name) == "sync-value"


def test_a_crashed_browser_leaves_the_previous_version(make_profile, site) -> None:
    name = make_profile("py-crash", state_mode="persistent")

    async def session(write: str, *, crash: bool) -> tuple[str | None, str | None, int | None]:
        async with open_session(name) as opened:
            page = await opened.context.new_page()
            await page.goto(f"{site.url}/storage?write={write}")
            await page.wait_for_selector("#status:text('ready')")
            if crash:
                assert opened.browser_pid is not None
                os.kill(opened.browser_pid, signal.SIGKILL)
            else:
                opened.request_close()
            opened.reason = await opened.wait()
        return opened.reason, opened.outcome, opened.saved_version

    assert asyncio.run(session("kept", crash=False)) == ("requested", "saved", 1)
    assert asyncio.run(session("lost", crash=True)) == ("browser-closed", "crashed", None)
    assert StateStore().current_version(name) == 1

    async def read() -> str:
        async with fleetwright.open_profile(name) as context:
            page = await context.new_page()
            await page.goto(f"{site.url}/storage")
            await page.wait_for_selector("#status:text('ready')")
            return await page.inner_text("#local")

    assert asyncio.run(read()) == "kept"


def test_a_dead_openers_scratch_folder_is_swept(make_profile, home) -> None:
    name = make_profile("py-sweep")
    stale = home / "open" / "scratch-999999999-abcd"
    (stale / "Default").mkdir(parents=True)

    async def once() -> None:
        async with open_session(name) as opened:
            opened.request_close()

    asyncio.run(once())
    assert not stale.exists()
    assert [p.name for p in (home / "open").glob("scratch-*")] == []


def test_bad_names_and_missing_display(make_profile, monkeypatch: pytest.MonkeyPatch) -> None:
    async def open_(name: str, **kw: object) -> None:
        async with open_session(name, **kw):  # type: ignore[arg-type]
            pass

    with pytest.raises(ValidationError, match="path separator"):
        asyncio.run(open_("../etc"))
    with pytest.raises(NotFoundError, match="unknown profile 'ghost'"):
        asyncio.run(open_("ghost"))
    make_profile("py-headed")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(Exception, match="no display for a headed browser"):
        asyncio.run(open_("py-headed", headed=True))
    with pytest.raises(ValidationError, match="outside 1024"):
        asyncio.run(open_("py-headed", port=80))
