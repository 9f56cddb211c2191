"""The session every benchmark runs, written twice: as a Fleetwright command run by the engine,
and as the bare Playwright code a user would write for the same steps.

Steps: open /login, fill user and password, submit, wait for /account, read the greeting.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fleetwright.browser import BrowserPool
from fleetwright.browser.chromium import (
    chromium_args,
    find_chromium,
    find_headless_shell,
    needs_no_sandbox,
)
from fleetwright.commands import (
    CommandSpec,
    TraceMode,
    get_command,
    load_commands,
    parse_command,
)
from fleetwright.sessions import SessionEngine, SessionRequest

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

__all__ = [
    "BENCH_COMMAND",
    "BENCH_FINGERPRINT",
    "FleetSession",
    "bare_context_options",
    "bare_launch_kwargs",
    "bare_session",
    "bare_steps",
    "bench_command",
    "load_bench_command",
    "write_site_state",
]

BENCH_COMMAND: dict[str, Any] = {
    "name": "bench-login",
    "version": "1",
    "description": "Sign in to the bench site and read the greeting.",
    "params": {
        "base_url": {"type": "str"},
        "tag": {"type": "str", "default": "", "description": "marks the first request"},
    },
    "steps": [
        {"goto": "{{ params.base_url }}/login?t={{ params.tag }}"},
        {"fill": {"selector": "#user", "value": "{{ profile.name }}"}},
        {"fill": {"selector": "#password", "value": "pw"}},
        {"click": "#submit"},
        {"wait_for": {"url": "**/account"}},
        {"extract": {"id": "who", "selector": "#who", "kind": "text"}},
    ],
}


#: The fingerprint both sides apply in the proxied variants (Fleetwright from the profile, bare
#: Playwright as new_context options).
BENCH_FINGERPRINT: dict[str, Any] = {
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36",
    "locale": "de-DE",
    "timezone": "Europe/Berlin",
    "viewport_width": 1366,
    "viewport_height": 768,
}


def bare_context_options(proxy: dict[str, str] | None) -> dict[str, Any]:
    """What a user passes to `new_context` for BENCH_FINGERPRINT and a proxy."""
    fp = BENCH_FINGERPRINT
    options: dict[str, Any] = {
        "user_agent": fp["user_agent"],
        "locale": fp["locale"],
        "timezone_id": fp["timezone"],
        "viewport": {"width": fp["viewport_width"], "height": fp["viewport_height"]},
        "color_scheme": "light",
    }
    if proxy is not None:
        options["proxy"] = proxy
    return options


_WRITE_STATE_JS = """(v) => {
  localStorage.setItem("fw", v);
  sessionStorage.setItem("fw", v);
  document.cookie = "fw_js=" + encodeURIComponent(v) + "; path=/; max-age=86400";
}"""


async def write_site_state(page: Page, base_url: str, value: str, *, idb: bool) -> None:
    """Leave `value` in a cookie, localStorage and sessionStorage on the bench site's origin
    and, with `idb`, in an IndexedDB database too (as the site's /storage page writes them)."""
    if idb:
        await page.goto(f"{base_url}/storage?write={value}")
        await page.wait_for_function("document.getElementById('status').textContent === 'ready'")
    else:
        await page.goto(f"{base_url}/login")
        await page.evaluate(_WRITE_STATE_JS, value)


def bench_command() -> CommandSpec:
    """The bench command, validated like any user command."""
    return parse_command(BENCH_COMMAND, where="bench")


def load_bench_command(folder: Path) -> CommandSpec:
    """Write the bench command as YAML into `folder` and load it into the catalogue."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench-login.yaml"
    path.write_text(yaml.safe_dump(BENCH_COMMAND, sort_keys=False), encoding="utf-8")
    load_commands([folder])
    return get_command(BENCH_COMMAND["name"])


async def bare_steps(page: Page, base_url: str, user: str) -> str:
    """The same steps as BENCH_COMMAND in plain Playwright."""
    await page.goto(f"{base_url}/login?t=")
    await page.fill("#user", user)
    await page.fill("#password", "pw")
    await page.click("#submit")
    await page.wait_for_url("**/account")
    text = await page.locator("#who").inner_text()
    if text != f"Signed in as {user}":
        raise RuntimeError(f"bare session for {user} read {text!r}")
    return text


async def bare_session(
    browser: Browser, base_url: str, user: str, *, context_options: dict[str, Any] | None = None
) -> str:
    """Bare Playwright's session: a new context in a shared browser (with `context_options`:
    proxy, fingerprint), the steps, close."""
    context = await browser.new_context(**(context_options or {}))
    try:
        page = await context.new_page()
        return await bare_steps(page, base_url, user)
    finally:
        await context.close()


def bare_launch_kwargs() -> dict[str, Any]:
    """Launch options for bare Playwright: the same Chromium and flags Fleetwright uses (its
    headless shell when FLEETWRIGHT_HEADLESS_SHELL asks for it, as for Fleetwright's sessions)."""
    return {
        "executable_path": str(find_headless_shell() or find_chromium()),
        "args": chromium_args(),
        "headless": True,
        "chromium_sandbox": not needs_no_sandbox(),
    }


class FleetSession:
    """One whole Fleetwright session of the bench command on a catalogue profile:
    SessionEngine.run = lease → launch from saved state → steps → save state → run row →
    release, on a pool the caller keeps open."""

    path = "SessionEngine.run (lease, saved state, steps, save, run row)"

    def __init__(self, pool: BrowserPool, base_url: str) -> None:
        self.engine = SessionEngine(pool=pool)
        self.base_url = base_url
        self.command = bench_command()

    async def run(self, name: str, *, trace: TraceMode | None = None) -> float:
        """Run the command on profile `name`; returns the seconds the session took."""
        t0 = time.perf_counter()
        result = await self.engine.run(
            SessionRequest(
                profile=name,
                command=self.command,
                params={"base_url": self.base_url},
                trace=trace,
            )
        )
        if result.outputs.get("who", {}).get("text") != f"Signed in as {name}":
            raise RuntimeError(f"Fleetwright session for {name} read {result.outputs}")
        return time.perf_counter() - t0

    async def close(self) -> None:
        """Close the engine's relays (the pool belongs to the caller)."""
        await self.engine.relays.close()
