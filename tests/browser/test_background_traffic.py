"""Chromium's own background traffic through a profile's proxy, read from the proxy's log: for
storage and persistent profiles, on first launch and on relaunch, with a login form filled in
and the page left idle, the proxy sees only the test page's own host."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetwright.browser import BrowserPool, LaunchSpec, ProxyConfig
from fleetwright.browser.chromium import (
    HEADLESS_SHELL_CANDIDATES,
    NO_MODELS_MANIFEST,
    QUIET_PREFERENCES,
    chromium_args,
    quiet_profile,
)
from fleetwright.settings import Settings
from fleetwright.testing.proxies import TinyProxy
from fleetwright.testing.site import SiteServer

#: How long each launch stays on the page after the login: Chromium's startup requests (sign-in
#: account checks, on-demand component checks, leak checks) all came within ~12 s when they
#: were still sent, the sign-in check retrying with back-off.
IDLE_MS = 15_000

_REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (?:https?://)?([^/\s]+)")


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[TinyProxy]:
    (tmp_path / "tp").mkdir()
    with TinyProxy(username="fleet", password="bg-pw", workdir=tmp_path / "tp") as proxy:
        yield proxy


def _hosts(log: str) -> list[str]:
    """host:port (or host) of every request the proxy logged, in order."""
    return [m[2] for m in _REQUEST.finditer(log)]


def test_args_point_signin_and_model_manifest_at_nothing() -> None:
    args = chromium_args()
    assert "--gaia-url=https://signin.invalid:1" in args
    assert f"--optimization-guide-manifest-override={NO_MODELS_MANIFEST}" in args
    assert json.loads(NO_MODELS_MANIFEST.read_text()) == {}


def test_quiet_profile_merges_into_saved_preferences(tmp_path: Path) -> None:
    prefs = tmp_path / "Default" / "Preferences"
    quiet_profile(tmp_path)  # a fresh folder gets the file
    assert json.loads(prefs.read_text()) == QUIET_PREFERENCES
    saved = {"profile": {"exit_type": "Normal", "name": "x"}, "intl": {"accept_languages": "de"}}
    prefs.write_text(json.dumps(saved))
    quiet_profile(tmp_path)
    merged = json.loads(prefs.read_text())
    assert merged["intl"] == {"accept_languages": "de"}
    assert merged["profile"] == {
        "exit_type": "Normal",
        "name": "x",
        "password_manager_leak_detection": False,
    }
    prefs.write_text("{not json")
    quiet_profile(tmp_path)
    assert json.loads(prefs.read_text()) == QUIET_PREFERENCES
    assert prefs.stat().st_mode & 0o077 == 0


@pytest.mark.browser
@pytest.mark.parametrize(
    ("mode", "shell"), [("storage", False), ("persistent", False), ("storage", True)]
)
async def test_only_the_page_goes_through_the_proxy(
    make_profile: Callable[..., str], site: SiteServer, tinyproxy: TinyProxy, mode: str,
    shell: bool,
) -> None:  # fmt: skip
    """`shell`: the storage profile in Chromium's headless shell (FLEETWRIGHT_HEADLESS_SHELL)."""
    if shell and not any(Path(c).is_file() for c in HEADLESS_SHELL_CANDIDATES):
        pytest.skip("apt-get install chromium-headless-shell (scripts/test-services.sh does)")
    proxy = ProxyConfig.build(
        server=f"http://127.0.0.1:{tinyproxy.port}", username="fleet", password="bg-pw"
    )
    name = make_profile(f"quiet-{mode}{'-shell' if shell else ''}", state_mode=mode)
    spec = LaunchSpec(profile_name=name, state_mode=mode, proxy=proxy)
    own = f"127.0.0.1:{site.port}"
    settings = Settings(headless_shell="auto" if shell else None)
    pool = BrowserPool(browsers=1, settings=settings)
    try:
        for launch in ("first", "relaunch"):
            async with pool.session(spec) as s:
                await s.page.goto(f"{site.url}/login")
                await s.page.fill("#user", "ada")
                await s.page.fill("#password", "pw")
                await s.page.click("#submit")
                await s.page.wait_for_url(f"{site.url}/account")
                await s.page.wait_for_timeout(IDLE_MS)
                await s.save_state()
            hosts = _hosts(tinyproxy.log_text())
            assert own in hosts, (launch, hosts)  # the page did go through the proxy
            assert set(hosts) == {own}, (launch, sorted(set(hosts) - {own}))
    finally:
        await pool.close()
