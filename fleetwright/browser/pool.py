"""A pool of Chromium processes: shared browsers hosting many contexts, plus one process per
persistent profile. Every session is closed on success, error, cancellation and timeout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fleetwright.browser.artifacts import SessionArtifacts, default_run_key
from fleetwright.browser.chromium import (
    find_chromium,
    find_headless_shell,
    launch_options,
    quiet_profile,
)
from fleetwright.browser.env import browser_env, scrub_driver_env
from fleetwright.browser.errors import map_playwright_error
from fleetwright.browser.procs import TAG_VAR, alive, detach_driver, kill_tree, tagged_pids
from fleetwright.browser.redaction import register_secrets
from fleetwright.browser.session import BrowserSession, read_session_file
from fleetwright.browser.session_storage import restore_script, split_origins
from fleetwright.browser.spec import LaunchSpec, context_options
from fleetwright.browser.state import BrowserState, StateStore
from fleetwright.errors import (
    ConfigurationError,
    FleetwrightError,
    SessionError,
)
from fleetwright.private import private_dir
from fleetwright.settings import Settings, get_settings

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Playwright

__all__ = ["BrowserPool"]

logger = logging.getLogger(__name__)
_CLOSE_TIMEOUT = 10.0


@dataclass(eq=False)
class _Browser:
    """A launched Chromium and its bookkeeping."""

    tag: str
    browser: Browser | None = None
    context: BrowserContext | None = None  # persistent profiles only
    pid: int | None = None
    active: int = 0
    opened: int = 0
    draining: bool = False
    dead: bool = False
    closing: bool = False
    pid_task: asyncio.Task[None] | None = None
    sessions: set[BrowserSession] = field(default_factory=set)


async def _finish(aw: Awaitable[Any]) -> None:
    """Run cleanup to the end even if the caller is cancelled meanwhile; re-raise that."""
    task = asyncio.ensure_future(aw)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            break
    if not task.cancelled() and task.exception() is not None:
        logger.warning("Session cleanup failed: %s", type(task.exception()).__name__)
    if cancelled:
        raise asyncio.CancelledError


class BrowserPool:
    """Shared Chromium processes for storage profiles, own processes for persistent ones."""

    def __init__(
        self,
        *,
        browsers: int | None = None,
        contexts_per_browser: int | None = None,
        headless: bool | None = None,
        store: StateStore | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.max_browsers = browsers or self.settings.browsers_per_worker
        self.contexts_per_browser = contexts_per_browser or self.settings.contexts_per_browser
        self.headless = self.settings.headless if headless is None else headless
        self._store = store
        self._pw: Playwright | None = None
        self._pw_cm: Any = None
        self._executable: Path | None = None
        self._shell: Path | None = None
        self._shared: list[_Browser] = []
        self._persistent: set[_Browser] = set()
        self._lock = asyncio.Lock()
        self._closed = False
        self.launched = 0

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = StateStore()
        return self._store

    async def __aenter__(self) -> BrowserPool:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start Playwright and find Chromium (browsers launch on first use)."""
        if self._pw is not None:
            return
        if self._closed:
            raise SessionError("The browser pool is closed; create a new one")
        from playwright.async_api import async_playwright

        executable = find_chromium(settings=self.settings, playwright_executable=None)
        shell = find_headless_shell(self.settings) if self.headless else None
        scrub_driver_env(allow=self.settings.browser_env_allow)
        detach_driver()
        cm = async_playwright()
        pw = await cm.__aenter__()
        if self.settings.chromium_executable is None:
            own = Path(pw.chromium.executable_path)
            with contextlib.suppress(ConfigurationError):
                executable = find_chromium(settings=self.settings, playwright_executable=str(own))
        self._pw, self._pw_cm, self._executable = pw, cm, executable
        self._shell = shell

    @property
    def shared_executable(self) -> Path | None:
        """What shared (storage-mode) browsers run: the headless shell when the settings ask
        for it, else the Chromium every browser runs."""
        return self._shell or self._executable

    def _launch_kwargs(self, tag: str, *, shared: bool = False) -> dict[str, Any]:
        executable = self.shared_executable if shared else self._executable
        assert executable is not None
        env = browser_env(allow=self.settings.browser_env_allow, add={TAG_VAR: tag})
        return launch_options(executable, headless=self.headless, env=env)

    async def _find_pid(self, entry: _Browser) -> None:
        pids = await asyncio.to_thread(tagged_pids, entry.tag)
        entry.pid = pids[0] if pids else None

    # -- shared browsers ----------------------------------------------------------------
    async def _launch_shared(self) -> _Browser:
        assert self._pw is not None
        entry = _Browser(tag=secrets.token_hex(8))
        try:
            entry.browser = await self._pw.chromium.launch(
                **self._launch_kwargs(entry.tag, shared=True)
            )
        except Exception as exc:
            raise ConfigurationError(
                f"Chromium at {self.shared_executable} did not start ({type(exc).__name__}); "
                "check it runs, or install one with `apt-get install chromium`"
            ) from None
        entry.browser.on("disconnected", lambda _b: self._on_disconnect(entry))
        self.launched += 1
        await self._find_pid(entry)
        logger.info("Launched shared Chromium pid=%s", entry.pid)
        return entry

    def _on_disconnect(self, entry: _Browser) -> None:
        """The browser went away: a crash unless we were closing it ourselves."""
        if entry.dead:
            return
        entry.dead = True
        unexpected = [s for s in entry.sessions if not s.closed]
        for session in unexpected:
            session.crashed = True
        idle_crash = not entry.sessions and not entry.closing
        if (unexpected or idle_crash) and entry.pid is not None and alive(entry.pid):
            logger.warning("Chromium pid=%s went away; killing what is left of it", entry.pid)
            kill_tree(entry.pid)

    async def _acquire(self) -> _Browser:
        async with self._lock:
            if self._closed:
                raise SessionError("The browser pool is closed; create a new one")
            await self.start()
            self._shared = [b for b in self._shared if not b.dead]
            usable = [b for b in self._shared if not b.draining]
            if len(usable) < self.max_browsers and not any(b.active == 0 for b in usable):
                entry = await self._launch_shared()
                self._shared.append(entry)
                usable.append(entry)
            entry = min(usable, key=lambda b: b.active)
            entry.active += 1
            entry.opened += 1
            if entry.opened >= self.contexts_per_browser:
                entry.draining = True
            return entry

    async def _release(self, entry: _Browser) -> None:
        entry.active -= 1
        if entry.active == 0 and (entry.draining or entry.dead):
            async with self._lock:
                if entry in self._shared:
                    self._shared.remove(entry)
            await self._kill(entry)

    async def _kill(self, entry: _Browser) -> None:
        """Close a browser; SIGKILL it (and its children) if it does not close in time."""
        entry.closing = True
        if entry.pid_task is not None:
            with contextlib.suppress(Exception):
                await entry.pid_task
        try:
            if entry.context is not None:
                await asyncio.wait_for(entry.context.close(), timeout=_CLOSE_TIMEOUT)
            elif entry.browser is not None and not entry.dead:
                await asyncio.wait_for(entry.browser.close(), timeout=_CLOSE_TIMEOUT)
        except Exception as exc:
            logger.warning("Chromium pid=%s did not close (%s)", entry.pid, type(exc).__name__)
        entry.dead = True
        if entry.pid is not None and alive(entry.pid):
            await asyncio.sleep(0.2)  # a closed browser's process can take a moment to exit
            if alive(entry.pid):
                kill_tree(entry.pid)

    # -- sessions -----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def session(
        self,
        spec: LaunchSpec,
        *,
        timeout: timedelta | None = None,
        state: BrowserState | Literal["load"] | None = "load",
    ) -> AsyncIterator[BrowserSession]:
        """Open a session for `spec`; closed whatever happens. Playwright errors are mapped
        to Fleetwright's (a crashed or killed browser raises BrowserCrashError).

        Storage mode restores the profile's saved state, read from the store ("load"), or
        the one the caller already read (a BrowserState, or None for a never-saved profile).
        """
        artifacts = SessionArtifacts.for_run(
            spec.run_key or default_run_key(spec.profile_name), home=self.settings.home
        )
        if spec.state_mode == "storage":
            session, entry = await self._open_storage(spec, artifacts, state)
        else:
            session, entry = await self._open_persistent(spec, artifacts)
        failed = True
        limit = asyncio.timeout(timeout.total_seconds() if timeout is not None else None)
        try:
            async with limit:
                yield session
            failed = False
        except TimeoutError:
            if not limit.expired():
                raise
            raise SessionError(
                f"Profile {spec.profile_name!r}: the session ran over its "
                f"{timeout.total_seconds() if timeout else 0:g} s limit",
                retryable=True,
            ) from None
        except FleetwrightError:
            raise
        except Exception as exc:
            mapped = map_playwright_error(
                exc, profile=spec.profile_name, crashed=session.crashed, proxy=_server(spec)
            )
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            session.failed = failed
            await _finish(self._end(session, entry, failed=failed))

    async def _end(self, session: BrowserSession, entry: _Browser, *, failed: bool) -> None:
        try:
            await session.close(failed=failed)
        finally:
            entry.sessions.discard(session)
            if entry.context is not None:  # persistent: the context is the browser
                self._persistent.discard(entry)
                await self._kill(entry)
                if session.workdir is not None:
                    await asyncio.to_thread(shutil.rmtree, session.workdir, True)
            else:
                await self._release(entry)

    async def _open_storage(
        self,
        spec: LaunchSpec,
        artifacts: SessionArtifacts,
        preloaded: BrowserState | Literal["load"] | None = "load",
    ) -> tuple[BrowserSession, _Browser]:
        started = time.perf_counter()
        state: BrowserState | None = None
        if spec.restore_state:
            if preloaded == "load":
                state = await asyncio.to_thread(self.store.load, spec.profile_name)
            else:
                state = preloaded
        entry = await self._acquire()
        try:
            assert entry.browser is not None
            options = context_options(spec.fingerprint)
            if spec.proxy is not None:
                options["proxy"] = spec.proxy.to_playwright()
            local: dict[str, dict[str, str]] = {}
            if state is not None:
                options["storage_state"], local = split_origins(state.storage)
            context = await entry.browser.new_context(**options)
            session = await self._prepare(spec, context, entry, artifacts, state, local, started)
        except BaseException as exc:
            await _finish(self._release(entry))
            raise self._open_error(spec, exc, entry) from exc
        return session, entry

    async def _open_persistent(
        self, spec: LaunchSpec, artifacts: SessionArtifacts
    ) -> tuple[BrowserSession, _Browser]:
        started = time.perf_counter()
        async with self._lock:
            if self._closed:
                raise SessionError("The browser pool is closed; create a new one")
            await self.start()
        assert self._pw is not None
        if spec.restore_state:
            workdir = await asyncio.to_thread(
                self.store.checkout, spec.profile_name, into=spec.state_dir
            )
        else:
            workdir = spec.state_dir / f"scratch-{secrets.token_hex(4)}"
            private_dir(workdir)
        entry = _Browser(tag=secrets.token_hex(8))
        try:
            options = context_options(spec.fingerprint)
            if spec.proxy is not None:
                options["proxy"] = spec.proxy.to_playwright()
            await asyncio.to_thread(quiet_profile, workdir)
            context = await self._pw.chromium.launch_persistent_context(
                str(workdir), **self._launch_kwargs(entry.tag), **options
            )
            entry.context = context
            self._persistent.add(entry)
            self.launched += 1
            entry.pid_task = asyncio.create_task(self._find_pid(entry))
            context.on("close", lambda _c: self._on_disconnect(entry))
            state = await asyncio.to_thread(read_session_file, workdir)
            if state is not None and state.storage.get("cookies"):
                await context.add_cookies(state.storage["cookies"])
            session = await self._prepare(spec, context, entry, artifacts, state, None, started)
            session.workdir = workdir
        except BaseException as exc:
            self._persistent.discard(entry)
            await _finish(self._kill(entry))
            await asyncio.to_thread(shutil.rmtree, workdir, True)
            raise self._open_error(spec, exc, entry) from exc
        return session, entry

    def _open_error(self, spec: LaunchSpec, exc: BaseException, entry: _Browser) -> BaseException:
        if not isinstance(exc, Exception) or isinstance(exc, FleetwrightError):
            return exc
        mapped = map_playwright_error(
            exc, profile=spec.profile_name, crashed=entry.dead, proxy=_server(spec)
        )
        return mapped if mapped is not None else exc

    async def _prepare(
        self,
        spec: LaunchSpec,
        context: BrowserContext,
        entry: _Browser,
        artifacts: SessionArtifacts,
        state: BrowserState | None,
        local_storage: dict[str, dict[str, str]] | None = None,
        started: float | None = None,
    ) -> BrowserSession:
        if spec.proxy is not None:  # a trace records the proxy's Basic credentials
            register_secrets(context, spec.proxy.secret_values())
        try:
            session_storage = state.session_storage if state is not None else {}
            if script := restore_script(session_storage, local_storage):
                await context.add_init_script(script=script)
            restored = time.perf_counter()
            if spec.tracing:
                await artifacts.start_trace(context)
            page = context.pages[0] if context.pages else await context.new_page()
            opened = time.perf_counter()
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(context.close(), timeout=_CLOSE_TIMEOUT)
            raise
        session = BrowserSession(
            spec,
            context,
            page,
            artifacts=artifacts,
            store=self.store if spec.restore_state else None,
        )
        if started is not None:
            session.timings.update(
                restore_ms=(restored - started) * 1000, open_ms=(opened - started) * 1000
            )
        page.on("crash", session.mark_crashed)
        entry.sessions.add(session)
        if entry.dead:
            session.crashed = True
        return session

    # -- pool ---------------------------------------------------------------------------
    def browser_loads(self) -> list[int]:
        """Open contexts per live shared browser."""
        return [e.active for e in self._shared if not e.dead]

    def browser_pids(self) -> list[int]:
        """Main PIDs of the live Chromium processes this pool launched."""
        entries = [*self._shared, *self._persistent]
        return [e.pid for e in entries if e.pid is not None and not e.dead]

    async def close(self) -> None:
        """Close every browser (killing any that hang) and stop Playwright."""
        async with self._lock:
            self._closed = True
            entries = [*self._shared, *self._persistent]
            self._shared.clear()
            self._persistent.clear()
        await asyncio.gather(*(self._kill(e) for e in entries), return_exceptions=True)
        if self._pw_cm is not None:
            with contextlib.suppress(Exception):
                await self._pw_cm.__aexit__(None, None, None)
        self._pw = self._pw_cm = None


def _server(spec: LaunchSpec) -> str | None:
    return spec.proxy.server if spec.proxy is not None else None
