"""One browser session: a context and page for one profile, with state and artifact helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetwright.browser.artifacts import SessionArtifacts
from fleetwright.browser.errors import is_closed_error
from fleetwright.browser.files import atomic_write_bytes
from fleetwright.browser.session_storage import capture_session_storage
from fleetwright.browser.spec import LaunchSpec
from fleetwright.browser.state import BrowserState, StateStore
from fleetwright.errors import SessionError

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

__all__ = ["SESSION_FILE", "BrowserSession", "read_session_file", "write_session_file"]

logger = logging.getLogger(__name__)

#: In a persistent user-data-dir: sessionStorage and session cookies from the last save.
SESSION_FILE = "fleetwright-session.json"


class BrowserSession:
    """What `BrowserPool.session()` yields: `.context`, `.page`, state and artifact helpers."""

    def __init__(
        self,
        spec: LaunchSpec,
        context: BrowserContext,
        page: Page,
        *,
        artifacts: SessionArtifacts,
        store: StateStore | None,
        workdir: Path | None = None,
    ) -> None:
        self.spec = spec
        self.context = context
        self.page = page
        self.artifacts = artifacts
        self.workdir = workdir
        self.crashed = False
        self.failed = False
        self.saved_version: int | None = None
        #: how long opening took (ms): `restore_ms` = saved state read + context created with
        #: it (cookies, IndexedDB) + storage restore script; `open_ms` adds tracing and the page
        self.timings: dict[str, float] = {}
        self.keep_trace = spec.trace
        self._store = store
        self._closed = False

    @property
    def profile_name(self) -> str:
        return self.spec.profile_name

    @property
    def artifact_paths(self) -> dict[str, Path]:
        """Artifacts written so far (name → path), for the run record."""
        return dict(self.artifacts.paths)

    @property
    def closed(self) -> bool:
        return self._closed

    async def screenshot(self, name: str = "screenshot", *, full_page: bool = True) -> Path:
        """Save a screenshot of the session's page into its artifact folder."""
        return await self.artifacts.screenshot(self.page, name, full_page=full_page)

    async def capture_state(self) -> BrowserState:
        """Cookies, localStorage, IndexedDB and sessionStorage of the live context."""
        storage, session_storage = await asyncio.gather(
            self.context.storage_state(indexed_db=True),
            capture_session_storage(list(self.context.pages)),
        )
        return BrowserState(storage=dict(storage), session_storage=session_storage)

    async def save_state(self, run_id: int | None = None) -> int:
        """Save the profile's state as a new version; returns it.

        In persistent mode this closes the browser first (a user-data-dir can only be
        versioned closed), so call it last.
        """
        return await (await self.begin_save(run_id))

    async def begin_save(self, run_id: int | None = None) -> asyncio.Future[int]:
        """Capture the profile's state now and write it as a new version while the caller goes
        on (typically: closes the session); await the returned future for the version.

        Storage mode reads the live context here and leaves only the durable write and the
        catalogue switch to the future, so they overlap the context's close. Persistent mode
        saves in full before returning (the browser has to be closed first).
        """
        if self._store is None:
            raise SessionError(
                f"Profile {self.profile_name!r} was launched with restore_state=False; "
                "launch it with state to save state"
            )
        if self.spec.state_mode == "storage":
            state = await self.capture_state()
            saving = asyncio.ensure_future(
                asyncio.to_thread(self._store.save, self.profile_name, state, run_id)
            )
            saving.add_done_callback(self._saved)
            return saving
        version = await self._save_persistent(run_id)
        self.saved_version = version
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        done.set_result(version)
        return done

    def _saved(self, saving: asyncio.Future[int]) -> None:
        # reading the outcome here also marks a failure as seen when nobody awaits the future
        if not saving.cancelled() and saving.exception() is None:
            self.saved_version = saving.result()

    async def _save_persistent(self, run_id: int | None) -> int:
        assert self._store is not None
        if self.workdir is None or self._closed:
            raise SessionError(f"Profile {self.profile_name!r}: the session is already closed")
        await write_session_file(self.context, self.workdir)
        await self.close(failed=False)
        version = await asyncio.to_thread(
            self._store.commit, self.profile_name, self.workdir, run_id
        )
        self.workdir = None
        return version

    async def close(self, *, failed: bool) -> None:
        """Failure artifacts, then stop tracing and close the context (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if failed and self.spec.screenshot_on_failure and not self.crashed:
            await self._failure_screenshot()
        if self.artifacts.tracing:
            keep = self.keep_trace or (failed and self.spec.trace_on_failure)
            try:
                await asyncio.wait_for(
                    self.artifacts.stop_trace(self.context, keep=keep and not self.crashed),
                    timeout=20,
                )
            except Exception as exc:  # a dead browser cannot hand its trace over
                logger.warning(
                    "Trace of profile %s not saved: %s", self.profile_name, type(exc).__name__
                )
        try:
            await asyncio.wait_for(self.context.close(), timeout=10)
        except Exception as exc:
            logger.debug("Closing context of %s: %s", self.profile_name, type(exc).__name__)

    async def _failure_screenshot(self) -> None:
        try:
            if self.page.is_closed():
                return
            try:
                await asyncio.wait_for(
                    self.artifacts.screenshot(self.page, "failure", full_page=False), timeout=10
                )
            except Exception as exc:
                if self.crashed or is_closed_error(exc):
                    raise
                # a navigation still in flight can refuse the first attempt: stop it, retry
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.page.evaluate("window.stop()"), timeout=2)
                await asyncio.wait_for(
                    self.artifacts.screenshot(self.page, "failure", full_page=False), timeout=10
                )
        except Exception as exc:
            logger.warning(
                "Failure screenshot of profile %s not taken: %s %s",
                self.profile_name,
                type(exc).__name__,
                str(exc)[:300],
            )

    def mark_crashed(self, *_args: Any) -> None:
        """Note that the page or browser died (event handler)."""
        self.crashed = True


def read_session_file(workdir: Path) -> BrowserState | None:
    """sessionStorage and session cookies a persistent profile saved with its last version."""
    try:
        data = json.loads((workdir / SESSION_FILE).read_bytes())
        return BrowserState(
            storage={"cookies": data.get("session_cookies", []), "origins": []},
            session_storage=data.get("session_storage", {}),
        )
    except (OSError, ValueError, AttributeError):
        return None


async def write_session_file(context: BrowserContext, workdir: Path) -> None:
    """What Chromium drops at a restart (sessionStorage, session cookies), saved into a
    persistent profile's folder to be carried like a restored session would be."""
    captured = await capture_session_storage(list(context.pages))
    cookies = [c for c in await context.cookies() if c.get("expires", -1) == -1]
    payload = {"session_storage": captured, "session_cookies": cookies}
    data = json.dumps(payload).encode()
    await asyncio.to_thread(atomic_write_bytes, workdir / SESSION_FILE, data)
