"""Open a managed profile for any tool: its browser with a CDP endpoint on loopback.

`open_session(name)` takes the profile's lease (renewed while open), launches the profile with
its fingerprint, proxy (the SOCKS5 relay included) and saved state in a browser of its own, and
yields an `OpenedProfile` whose `ws_endpoint` Playwright, Puppeteer or Selenium connect to.
The profile's context is that browser's default context, so a tool connecting over CDP sees
and drives it (and nothing else: a shared browser's CDP would expose other profiles).

It stays open until the browser is closed (a person closes the window, a tool sends
Browser.close), a close is requested (`request_close()`, `fleetwright profile close`, Ctrl-C)
or the timeout passes. Then the state is saved as a new version and the lease released. A
browser that crashed, or a lease that was lost, saves nothing: the previous version stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fleetwright.browser.chromium import find_chromium, launch_options, quiet_profile
from fleetwright.browser.files import atomic_write_bytes
from fleetwright.browser.procs import tagged_pids
from fleetwright.browser.session import read_session_file, write_session_file
from fleetwright.browser.session_storage import capture_session_storage, restore_script
from fleetwright.browser.spec import ProxyConfig, context_options
from fleetwright.browser.state import BrowserState, StateStore
from fleetwright.catalogue.db import session_scope
from fleetwright.errors import (
    ConfigurationError,
    FleetwrightError,
    ProfileBusyError,
    ValidationError,
)
from fleetwright.private import private_dir
from fleetwright.proxies.pools import notify_failover
from fleetwright.sessions import lease as leases
from fleetwright.sessions import open_control
from fleetwright.sessions.claim import claim_profile
from fleetwright.sessions.observers import OPEN_COMMAND, SessionObservers, SessionStart
from fleetwright.settings import Settings, get_settings
from fleetwright.specs import ProfileSpec, ProxySpec, check_name

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Playwright

__all__ = ["OpenedProfile", "Outcome", "check_display", "open_session"]

logger = logging.getLogger(__name__)

#: how an open session ended: saved, or why nothing was saved
Outcome = Literal["saved", "crashed", "lease-lost", "discarded", "failed"]
Reason = Literal["requested", "browser-closed", "timeout", "lease-lost"]

_READY_TIMEOUT = 60.0
_CLOSE_TIMEOUT = 10.0
_POLL = 0.25
_BLANK = "<!doctype html><title></title>"


def check_display(headed: bool) -> None:
    """A headed browser needs an X display; say how to get one when there is none."""
    if headed and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise ConfigurationError(
            "no display for a headed browser (DISPLAY is not set); run on a desktop, or under "
            "a virtual display: `xvfb-run -a fleetwright profile open NAME --headed`"
        )


@dataclass(kw_only=True)
class OpenedProfile:
    """A profile open in its own browser; `ws_endpoint` is its CDP endpoint on loopback."""

    name: str
    state_mode: Literal["storage", "persistent"]
    ws_endpoint: str
    port: int
    holder: str
    headed: bool
    proxy: str | None
    started_at: datetime
    expires_at: datetime | None
    #: the profile's context (the browser's default context)
    context: BrowserContext
    #: after the close: the saved state version (None when nothing was saved) and why
    saved_version: int | None = None
    outcome: Outcome | None = None
    reason: Reason | None = None
    #: the browser's main process
    browser_pid: int | None = None
    #: http(s) origins the session's pages visited
    visited: set[str] = field(default_factory=set)
    _close: asyncio.Event = field(default_factory=asyncio.Event)
    _gone: asyncio.Event = field(default_factory=asyncio.Event)
    _lease: leases.ProfileLease | None = None

    def request_close(self) -> None:
        """Ask the session to save and close (safe to call more than once)."""
        self._close.set()

    @property
    def browser_closed(self) -> bool:
        return self._gone.is_set()

    def as_dict(self) -> dict[str, Any]:
        """What the CLI prints and the API returns."""
        return {
            "profile": self.name,
            "ws_endpoint": self.ws_endpoint,
            "port": self.port,
            "state_mode": self.state_mode,
            "headed": self.headed,
            "proxy": self.proxy,
            "holder": self.holder,
            "pid": os.getpid(),
            "browser_pid": self.browser_pid,
            "started_at": self.started_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "saved_version": self.saved_version,
            "outcome": self.outcome,
        }

    async def wait(self, timeout: timedelta | None = None) -> Reason:
        """Until a close is requested, the browser goes away, the lease is lost or `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout.total_seconds()
        requested = open_control.close_requested_path(self.name)
        while True:
            if self._close.is_set() or requested.exists():
                return "requested"
            if self._gone.is_set():
                return "browser-closed"
            if self._lease is not None and self._lease.lost:
                return "lease-lost"
            if deadline is not None and time.monotonic() >= deadline:
                return "timeout"
            waiter = asyncio.ensure_future(self._close.wait())
            gone = asyncio.ensure_future(self._gone.wait())
            await asyncio.wait([waiter, gone], timeout=_POLL, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            gone.cancel()


@dataclass
class _Begun:
    profile_id: int
    spec: ProfileSpec
    proxy_id: int | None
    proxy_name: str | None
    state: BrowserState | None


@dataclass(frozen=True)
class _OpenOutcome:
    """How an open session went, as session observers read it (metrics)."""

    profile: str
    status: str
    error: str | None
    error_type: str | None
    duration_ms: float
    proxy: str | None
    retryable: bool = False
    artifacts: dict[str, str] = field(default_factory=dict)


#: what was saved, or why not, as an outcome's error class (a crash, a lost lease)
_UNSAVED_ERRORS = {"crashed": "BrowserCrashError", "lease-lost": "LeaseLostError"}


def _outcome(
    name: str, opened: OpenedProfile | None, error: BaseException | None, started: float
) -> _OpenOutcome:
    duration_ms = (time.perf_counter() - started) * 1000
    proxy = opened.proxy if opened is not None else None
    if error is None and opened is not None and opened.outcome == "saved":
        return _OpenOutcome(name, "ok", None, None, duration_ms, proxy)
    if error is not None:
        kind = type(error).__name__
        message = getattr(error, "message", None) or kind
    else:
        what = opened.outcome if opened is not None else None
        kind = _UNSAVED_ERRORS.get(what or "", "StateNotSaved")
        message = f"state not saved ({what})"
    return _OpenOutcome(name, "failed", message, kind, duration_ms, proxy)


def _holder() -> str:
    return f"open:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _begin(
    name: str, holder: str, settings: Settings, store: StateStore, url: str | None
) -> _Begun:
    """One transaction, the claim a run makes too: read the profile, take its lease (or fail
    naming the holder), pick its proxy (a failover is told as a run's is); then its saved
    state, read under the lease."""
    with session_scope(url) as s:
        claim = claim_profile(s, name, holder, settings.lease_ttl, store=store, purpose="open")
        if not claim.taken:
            raise ProfileBusyError(
                f"profile {name!r} is in use by {claim.held_by}; close it there "
                f"(`fleetwright profile close {name}`) or wait for that run to end"
            )
    if claim.failover is not None:
        notify_failover(claim.failover)
    proxy_id, proxy_name = claim.proxy if claim.proxy is not None else (None, None)
    try:
        state = store.read(claim.stored) if claim.stored is not None else None
    except BaseException:
        leases.release(claim.profile_id, holder, url=url)
        raise
    return _Begun(claim.profile_id, claim.spec, proxy_id, proxy_name, state)


def _browser_env(tag: str) -> dict[str, str | float | bool]:
    """The browser's environment: the allow-list (no secrets), tagged for clean-up."""
    from fleetwright.browser.env import browser_env
    from fleetwright.browser.procs import TAG_VAR

    return browser_env(allow=get_settings().browser_env_allow, add={TAG_VAR: tag})


def _port_arg(port: int | None) -> str:
    if port is not None and not 1024 <= port <= 65535:
        raise ValidationError(f"--port {port} is outside 1024–65535; leave it out for a random one")
    if port is not None:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise ValidationError(
                    f"port {port} on 127.0.0.1 is in use; pick another or leave --port out"
                ) from None
    return f"--remote-debugging-port={port or 0}"


async def _endpoint(workdir: Path, port: int | None) -> tuple[int, str]:
    """The browser's DevTools port and websocket URL: with a random port Chromium writes both
    into the user-data-dir; with a fixed one, DevTools' /json/version says it."""
    marker = workdir / "DevToolsActivePort"
    started = time.monotonic()
    while time.monotonic() - started < _READY_TIMEOUT:
        if port is None:
            with contextlib.suppress(OSError, ValueError):
                lines = marker.read_text().split()
                if len(lines) >= 2:
                    return int(lines[0]), f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        else:
            with contextlib.suppress(OSError, ValueError, KeyError):
                ws = await asyncio.to_thread(_version_ws, port)
                return port, ws
        await asyncio.sleep(0.05)
    raise ConfigurationError(
        f"Chromium did not open its DevTools endpoint within {_READY_TIMEOUT:g}s; check it runs"
    )


def _version_ws(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=2) as answer:
        return str(json.loads(answer.read())["webSocketDebuggerUrl"])


def _sweep_scratch(folder: Path) -> None:
    """Remove the scratch user-data-dirs of openers that died without cleaning up."""
    from fleetwright.browser.procs import alive

    for entry in folder.glob("scratch-*-*"):
        pid = entry.name.split("-")[1]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _clear_exit_type(workdir: Path) -> None:
    """Forget the last shutdown's mark, so that only this run's clean exit sets it again."""
    path = workdir / "Default" / "Preferences"
    try:
        prefs = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(prefs.get("profile"), dict) and prefs["profile"].pop("exit_type", None):
        atomic_write_bytes(path, json.dumps(prefs).encode())


def _exited_cleanly(workdir: Path) -> bool:
    """Chromium records a clean shutdown in the profile's Preferences ("exit_type")."""
    try:
        prefs = json.loads((workdir / "Default" / "Preferences").read_text())
    except (OSError, ValueError):
        return False
    return bool(prefs.get("profile", {}).get("exit_type") == "Normal")


class _Launcher:
    """Launches (and for a storage profile closed from outside, relaunches) one profile."""

    def __init__(
        self,
        pw: Playwright,
        executable: Path,
        spec: ProfileSpec,
        proxy: ProxyConfig | None,
        headed: bool,
    ) -> None:
        self.pw, self.executable, self.spec, self.proxy, self.headed = (
            pw, executable, spec, proxy, headed,
        )  # fmt: skip
        self.tag = ""

    async def exited(self, workdir: Path) -> bool:
        """After the browser went away by itself: wait for its processes to end, then say
        whether it shut down cleanly (a crash or a kill leaves the previous state)."""
        deadline = time.monotonic() + _CLOSE_TIMEOUT
        while time.monotonic() < deadline:
            if not await asyncio.to_thread(tagged_pids, self.tag):
                break
            await asyncio.sleep(0.05)
        return await asyncio.to_thread(_exited_cleanly, workdir)

    async def launch(self, workdir: Path, *extra: str, headless: bool) -> BrowserContext:
        """The profile's browser on `workdir`; its main process is found by its tag."""
        options = context_options(self.spec.fingerprint)
        if self.proxy is not None:
            options["proxy"] = self.proxy.to_playwright()
        if not headless:
            options["no_viewport"] = False
        self.tag = secrets.token_hex(8)
        await asyncio.to_thread(quiet_profile, workdir)
        launch = launch_options(
            self.executable, headless=headless, env=_browser_env(self.tag), extra=extra
        )
        return await self.pw.chromium.launch_persistent_context(str(workdir), **launch, **options)


@contextlib.asynccontextmanager
async def open_session(
    name: str,
    *,
    headed: bool = False,
    port: int | None = None,
    timeout: timedelta | None = None,
    url: str | None = None,
    settings: Settings | None = None,
    store: StateStore | None = None,
) -> AsyncIterator[OpenedProfile]:
    """Open profile `name` for the block; on exit save its state (unless the browser crashed
    or the lease was lost) and release the lease. Bad names, a busy profile (naming the
    holder), a missing display and a taken port raise one-line errors before anything starts."""
    try:
        check_name(name)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if timeout is not None and timeout.total_seconds() <= 0:
        raise ValidationError("--timeout must be positive (seconds)")
    check_display(headed)
    port_arg = _port_arg(port)
    settings = settings or get_settings()
    store = store or StateStore(url)
    executable = find_chromium(settings=settings)
    holder = _holder()
    started = time.perf_counter()
    begun = await asyncio.to_thread(_begin, name, holder, settings, store, url)
    held = leases.ProfileLease(begun.profile_id, name, holder, settings.lease_ttl, url=url)
    held.start_renewing()
    # the host's metrics see it as a session of its own (see sessions/observers.py)
    observed = SessionObservers(
        SessionStart(
            profile=name, command=OPEN_COMMAND, run_id=None, flow_run_id=None,
            task_run_id=None, attempt=1, proxy=begun.proxy_name,
            lease_wait=time.perf_counter() - started, pool=None, kind="open",
        )
    )  # fmt: skip
    relays = None
    pspec: ProxySpec | None = None
    workdir: Path | None = None
    opened: OpenedProfile | None = None
    error: BaseException | None = None
    try:
        proxy_cfg = None
        if begun.proxy_name is not None:
            from fleetwright.listeners import provider
            from fleetwright.proxies.browser import browser_proxy
            from fleetwright.proxies.relay import RelayRegistry
            from fleetwright.sessions.engine import PROXY_SPECS

            relays = RelayRegistry()
            pspec = await provider(PROXY_SPECS)(begun.proxy_name, url=url)
            proxy_cfg = ProxyConfig.build(**await browser_proxy(pspec, registry=relays))
            if begun.spec.ip_check != "off":
                await _check_exit_ip(begun, pspec, settings, url)
        if begun.spec.state_mode == "persistent":
            workdir = await asyncio.to_thread(store.checkout, name)
            await asyncio.to_thread(_clear_exit_type, workdir)
        else:
            await asyncio.to_thread(_sweep_scratch, settings.home / "open")
            workdir = settings.home / "open" / f"scratch-{os.getpid()}-{secrets.token_hex(4)}"
            private_dir(workdir)
        from playwright.async_api import async_playwright

        from fleetwright.browser.env import scrub_driver_env
        from fleetwright.browser.procs import detach_driver

        scrub_driver_env(allow=get_settings().browser_env_allow)
        detach_driver()

        async with async_playwright() as pw:
            launcher = _Launcher(pw, executable, begun.spec, proxy_cfg, headed)
            context = await launcher.launch(workdir, port_arg, headless=not headed)
            try:
                await _restore(context, begun, workdir)
                cdp_port, ws = await _endpoint(workdir, port)
                now = datetime.now(UTC)
                opened = OpenedProfile(
                    name=name,
                    state_mode=begun.spec.state_mode,
                    ws_endpoint=ws,
                    port=cdp_port,
                    holder=holder,
                    headed=headed,
                    proxy=begun.proxy_name,
                    started_at=now,
                    expires_at=now + timeout if timeout is not None else None,
                    context=context,
                )
                opened._lease = held
                pids = await asyncio.to_thread(tagged_pids, launcher.tag)
                opened.browser_pid = pids[0] if pids else None
                context.on("close", lambda _c: opened._gone.set())
                _track_origins(context, opened.visited)
                await asyncio.to_thread(open_control.write_record, opened.as_dict())
                observed.phase("launch")
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(context.close(), timeout=_CLOSE_TIMEOUT)
                raise
            ok = discard = False
            try:
                yield opened
                ok = True
            except Exception:
                discard = True  # the caller's block failed: keep the previous version
                raise
            finally:
                observed.phase("steps")  # the time it was open
                if held.lost:
                    opened.reason = "lease-lost"
                elif opened.reason is None:
                    opened.reason = "requested"
                try:
                    await asyncio.shield(
                        _finish(opened, launcher, store, workdir, ok=ok, lost=held.lost or discard)
                    )
                    observed.phase("save")
                finally:
                    if opened.outcome == "saved" and opened.state_mode == "persistent":
                        workdir = None  # it became the new version
                    result = {**opened.as_dict(), "reason": opened.reason}
                    await asyncio.to_thread(open_control.finish_record, name, result)
    except BaseException as exc:
        error = exc
        raise
    finally:
        if workdir is not None:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        if pspec is not None and relays is not None:
            from fleetwright.proxies.browser import release_browser_proxy

            with contextlib.suppress(Exception):
                await release_browser_proxy(pspec, registry=relays)
            await relays.close()
        await held.release()
        observed.phase("record")
        await observed.finished(_outcome(name, opened, error, started))


async def _check_exit_ip(
    begun: _Begun, pspec: ProxySpec, settings: Settings, url: str | None
) -> None:
    from fleetwright.proxies.exitip import verify_exit_ip

    if not settings.proxy_info_url:
        raise ValidationError(
            f"profile {begun.spec.name!r} asks for an exit-IP check but no IP-info URL is "
            "set; set FLEETWRIGHT_PROXY_INFO_URL or set the profile's ip_check to off"
        )
    await verify_exit_ip(
        begun.profile_id, begun.proxy_id, pspec, info_url=settings.proxy_info_url, url=url
    )


async def _restore(context: BrowserContext, begun: _Begun, workdir: Path) -> None:
    """Saved state into the fresh browser: a storage profile's cookies, localStorage and
    IndexedDB; sessionStorage (and a persistent profile's session cookies) by init script."""
    state = begun.state if begun.spec.state_mode == "storage" else read_session_file(workdir)
    if state is None:
        return
    if begun.spec.state_mode == "storage":
        await context.set_storage_state(state.storage)  # type: ignore[arg-type]
        for page in context.pages:  # setting it navigates a page; leave a blank one
            with contextlib.suppress(Exception):
                await page.goto("about:blank")
    elif state.storage.get("cookies"):
        await context.add_cookies(state.storage["cookies"])
    if script := restore_script(state.session_storage):
        await context.add_init_script(script=script)


async def _capture(context: BrowserContext) -> BrowserState:
    storage, session_storage = await asyncio.gather(
        context.storage_state(indexed_db=True), capture_session_storage(list(context.pages))
    )
    return BrowserState(storage=dict(storage), session_storage=session_storage)


async def _finish(
    opened: OpenedProfile,
    launcher: _Launcher,
    store: StateStore,
    workdir: Path,
    *,
    ok: bool,
    lost: bool,
) -> None:
    """Save (or not) and close the browser; sets `opened.outcome` and `saved_version`."""
    context = opened.context
    name = opened.name
    if lost or opened.reason == "lease-lost":
        opened.outcome = "lease-lost" if opened.reason == "lease-lost" else "discarded"
        await _close(context)
        logger.warning("profile %s: state not saved (%s)", name, opened.outcome)
        return
    try:
        if opened.state_mode == "storage":
            opened.saved_version = await _save_storage(opened, launcher, store, workdir)
        else:
            opened.saved_version = await _save_persistent(opened, launcher, store, workdir)
        opened.outcome = "saved" if opened.saved_version is not None else "crashed"
    except (FleetwrightError, Exception) as exc:
        opened.outcome = "failed"
        logger.error("profile %s: state not saved (%s)", name, type(exc).__name__)
        await _close(context)
        if ok:
            raise


async def _close(context: BrowserContext) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(context.close(), timeout=_CLOSE_TIMEOUT)


async def _save_storage(
    opened: OpenedProfile, launcher: _Launcher, store: StateStore, workdir: Path
) -> int | None:
    if not opened.browser_closed:
        state = await _capture(opened.context)
        await _close(opened.context)
        return await asyncio.to_thread(store.save, opened.name, state, None)
    # closed from outside: what it wrote to disk is read back in a headless relaunch
    if not await launcher.exited(workdir):
        logger.warning("profile %s: the browser crashed; the previous state stays", opened.name)
        return None
    origins = sorted(opened.visited)
    context = await launcher.launch(workdir, headless=True)
    try:
        await context.route(
            "**/*", lambda route: route.fulfill(body=_BLANK, content_type="text/html")
        )
        page = context.pages[0] if context.pages else await context.new_page()
        for origin in origins:
            with contextlib.suppress(Exception):
                await page.goto(origin + "/")
        storage = await context.storage_state(indexed_db=True)
    finally:
        await _close(context)
    state = BrowserState(storage=dict(storage), session_storage={})
    return await asyncio.to_thread(store.save, opened.name, state, None)


def _track_origins(context: BrowserContext, seen: set[str]) -> None:
    """Remember each http(s) origin the context's pages navigate to, so a storage profile
    closed from outside can have its storage read back per origin."""
    from urllib.parse import urlsplit

    def on_frame(frame: Any) -> None:
        parts = urlsplit(frame.url)
        if parts.scheme in ("http", "https") and parts.netloc:
            seen.add(f"{parts.scheme}://{parts.netloc}")

    def on_page(page: Any) -> None:
        page.on("framenavigated", on_frame)

    for page in context.pages:
        on_page(page)
    context.on("page", on_page)


async def _save_persistent(
    opened: OpenedProfile, launcher: _Launcher, store: StateStore, workdir: Path
) -> int | None:
    if not opened.browser_closed:
        await write_session_file(opened.context, workdir)
        await _close(opened.context)
    elif not await launcher.exited(workdir):
        logger.warning("profile %s: the browser crashed; the previous state stays", opened.name)
        return None
    return await asyncio.to_thread(store.commit, opened.name, workdir, None)
