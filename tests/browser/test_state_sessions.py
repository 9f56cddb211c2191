"""Profile state across real sessions: cookies, localStorage, IndexedDB and sessionStorage
survive in both modes, and two profiles running at once never see each other's storage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from fleetwright.browser import BrowserPool, BrowserSession, LaunchSpec
from fleetwright.testing.site import SiteServer

pytestmark = pytest.mark.browser
KINDS = ("cookie", "local", "session", "idb")


async def storage_values(s: BrowserSession, url: str) -> dict[str, str]:
    await s.page.goto(url)
    await s.page.wait_for_function("document.getElementById('status').textContent === 'ready'")
    return {k: (await s.page.text_content(f"#{k}")) or "" for k in KINDS}


async def login(s: BrowserSession, site: SiteServer, user: str) -> None:
    await s.page.goto(f"{site.url}/login")
    await s.page.fill("#user", user)
    await s.page.fill("#password", "pw")
    await s.page.click("#submit")
    await s.page.wait_for_url(f"{site.url}/account")


@pytest.mark.parametrize("mode", ["storage", "persistent"])
async def test_state_survives_two_sessions(
    pool: BrowserPool, site: SiteServer, make_profile: Callable[..., str], mode: str
) -> None:
    name = make_profile(f"keep-{mode}", state_mode=mode)
    spec = LaunchSpec(profile_name=name, state_mode=mode)
    async with pool.session(spec) as s:
        assert await storage_values(s, f"{site.url}/storage") == dict.fromkeys(KINDS, "")
        written = await storage_values(s, f"{site.url}/storage?write=v1-{mode}")
        assert written == dict.fromkeys(KINDS, f"v1-{mode}")
        await login(s, site, f"user-{mode}")
        await s.page.goto(f"{site.url}/storage")  # sessionStorage is captured from open pages
        assert await s.save_state() == 1
    async with pool.session(spec) as s:
        assert await storage_values(s, f"{site.url}/storage") == dict.fromkeys(KINDS, f"v1-{mode}")
        await s.page.goto(f"{site.url}/account")
        assert await s.page.text_content("#who") == f"Signed in as user-{mode}"
        # values written during a session are not reset by the restore on the next page
        await s.page.evaluate(
            "sessionStorage.setItem('fw', 'v2'); localStorage.setItem('fw', 'v2')"
        )
        values = await storage_values(s, f"{site.url}/storage")
        assert (values["session"], values["local"]) == ("v2", "v2")
        assert await s.save_state() == 2
    async with pool.session(spec) as s:
        values = await storage_values(s, f"{site.url}/storage")
        assert (values["session"], values["local"], values["idb"]) == ("v2", "v2", f"v1-{mode}")
    assert [v.version for v in pool.store.versions(name)] == [2, 1]


async def test_begin_save_captures_now_and_writes_while_the_session_closes(
    pool: BrowserPool, site: SiteServer, make_profile: Callable[..., str]
) -> None:
    """The engine's path: the state is read from the live context by begin_save(); the write
    finishes after the context is gone, and what it wrote is what the next session sees."""
    name = make_profile("overlap")
    spec = LaunchSpec(profile_name=name)
    async with pool.session(spec) as s:
        await storage_values(s, f"{site.url}/storage?write=captured")
        saving = await s.begin_save()
        # written after the capture: must not reach the saved version
        await s.page.evaluate("localStorage.setItem('fw', 'too-late')")
    assert s.closed
    assert await saving == 1
    assert s.saved_version == 1
    async with pool.session(spec) as s:
        values = await storage_values(s, f"{site.url}/storage")
        assert values == dict.fromkeys(KINDS, "captured")


async def test_unsaved_session_leaves_state_alone(
    pool: BrowserPool, site: SiteServer, make_profile: Callable[..., str]
) -> None:
    name = make_profile("untouched", state_mode="persistent")
    spec = LaunchSpec(profile_name=name, state_mode="persistent")
    async with pool.session(spec) as s:
        await storage_values(s, f"{site.url}/storage?write=kept")
        await s.save_state()
    with pytest.raises(RuntimeError):
        async with pool.session(spec) as s:
            await storage_values(s, f"{site.url}/storage?write=lost")
            raise RuntimeError("the run failed before saving")
    async with pool.session(spec) as s:
        assert (await storage_values(s, f"{site.url}/storage"))["local"] == "kept"
    assert pool.store.current_version(name) == 1
    assert not list(spec.state_dir.glob("work-*")), "working copies are removed"


async def test_two_profiles_at_once_are_isolated(
    home: object, site: SiteServer, make_profile: Callable[..., str]
) -> None:
    pool = BrowserPool(browsers=1)  # both contexts in the same Chromium process
    try:
        a, b = make_profile("iso-a"), make_profile("iso-b")
        async with pool.session(LaunchSpec(profile_name=a)) as sa:
            await storage_values(sa, f"{site.url}/storage?write=only-a")
            await login(sa, site, "alice")
            await sa.page.goto(f"{site.url}/storage")
            await sa.save_state()
        async with (
            pool.session(LaunchSpec(profile_name=a)) as sa,
            pool.session(LaunchSpec(profile_name=b)) as sb,
        ):
            assert sa.context.browser is sb.context.browser
            seen_a, seen_b = await asyncio.gather(
                storage_values(sa, f"{site.url}/storage"),
                storage_values(sb, f"{site.url}/storage"),
            )
            assert seen_a == dict.fromkeys(KINDS, "only-a")
            assert seen_b == dict.fromkeys(KINDS, "")
            await storage_values(sb, f"{site.url}/storage?write=only-b")
            assert (await storage_values(sa, f"{site.url}/storage"))["local"] == "only-a"
            await sb.page.goto(f"{site.url}/account")
            assert sb.page.url == f"{site.url}/login", "b is not signed in as alice"
            assert {c["name"] for c in await sb.context.cookies()} == {"fw_js"}
    finally:
        await pool.close()


async def test_persistent_rollback_launches_the_older_version(
    pool: BrowserPool, site: SiteServer, make_profile: Callable[..., str]
) -> None:
    name = make_profile("rolling", state_mode="persistent")
    spec = LaunchSpec(profile_name=name, state_mode="persistent")
    for value in ("first", "second"):
        async with pool.session(spec) as s:
            await storage_values(s, f"{site.url}/storage?write={value}")
            await s.save_state()
    staged = list(spec.state_dir.glob("ready-*"))
    assert len(staged) == 1, "the next launch's working copy is staged at save time"
    pool.store.rollback(name, 1)
    async with pool.session(spec) as s:
        assert (await storage_values(s, f"{site.url}/storage"))["local"] == "first"
    pool.store.rollback(name, 2)
    async with pool.session(spec) as s:
        assert (await storage_values(s, f"{site.url}/storage"))["idb"] == "second"
    assert [v.version for v in pool.store.versions(name)] == [2, 1]
