"""FLEETWRIGHT_HEADLESS_SHELL: storage-mode sessions run in Chromium's headless shell (their
state restored and saved as in the full Chromium), persistent profiles keep the full Chromium,
and a wrong setting is a one-line error before anything starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from fleetwright.browser import BrowserPool, LaunchSpec
from fleetwright.browser.chromium import HEADLESS_SHELL_CANDIDATES, find_headless_shell
from fleetwright.browser.state import StateStore
from fleetwright.errors import ConfigurationError
from fleetwright.settings import Settings
from fleetwright.testing.site import SiteServer

pytestmark = pytest.mark.browser

SHELL = next((Path(c) for c in HEADLESS_SHELL_CANDIDATES if Path(c).is_file()), None)


def _exes(pids: list[int]) -> set[str]:
    return {Path(psutil.Process(pid).exe()).name for pid in pids}


@pytest.mark.skipif(SHELL is None, reason="apt-get install chromium-headless-shell (setup.sh does)")
async def test_storage_sessions_run_in_the_shell_and_persistent_ones_in_chromium(
    home: Path, site: SiteServer, make_profile: Callable[..., str]
) -> None:
    settings = Settings(headless_shell="auto")
    assert find_headless_shell(settings) == SHELL
    pool = BrowserPool(store=StateStore(), settings=settings)
    try:
        name = make_profile("shell-storage")
        spec = LaunchSpec(profile_name=name, state_mode="storage")
        async with pool.session(spec) as s:
            assert _exes(pool.browser_pids()) == {"chromium-headless-shell"}
            await s.page.goto(f"{site.url}/storage?write=in-shell")
            await s.page.wait_for_function(
                "document.getElementById('status').textContent === 'ready'"
            )
            # the shell's own fingerprint: what the setting's description warns of
            assert await s.page.evaluate("navigator.plugins.length") == 0
            assert await s.save_state() == 1
        async with pool.session(spec) as s:  # restored in the shell: cookie, storage, IndexedDB
            await s.page.goto(f"{site.url}/storage")
            await s.page.wait_for_function(
                "document.getElementById('status').textContent === 'ready'"
            )
            for kind in ("cookie", "local", "idb"):
                assert await s.page.text_content(f"#{kind}") == "in-shell", kind
        persistent = make_profile("shell-persistent", state_mode="persistent")
        async with pool.session(LaunchSpec(profile_name=persistent, state_mode="persistent")) as s:
            await s.page.goto(f"{site.url}/login")
            assert "chromium" in _exes(pool.browser_pids())
            assert await s.page.evaluate("navigator.plugins.length") > 0
    finally:
        await pool.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/nowhere/headless_shell", "FLEETWRIGHT_HEADLESS_SHELL=/nowhere/headless_shell is not an "
         "executable file; fix the path, use `auto`, or unset it"),
    ],
)  # fmt: skip
async def test_a_wrong_headless_shell_is_a_one_line_error_before_anything_starts(
    home: Path, value: str, message: str
) -> None:
    pool = BrowserPool(store=StateStore(), settings=Settings(headless_shell=value))
    with pytest.raises(ConfigurationError) as info:
        await pool.start()
    assert message in info.value.message and "\n" not in info.value.message
    assert pool.browser_pids() == [] and pool._pw is None  # no driver was started


def test_off_and_unset_keep_the_full_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in (None, "", "off"):
        assert find_headless_shell(Settings(headless_shell=value)) is None
    monkeypatch.setattr(
        "fleetwright.browser.chromium.HEADLESS_SHELL_CANDIDATES", ("/nowhere/shell",)
    )
    with pytest.raises(ConfigurationError, match="apt-get install chromium-headless-shell"):
        find_headless_shell(Settings(headless_shell="auto"))
