"""Per-session artifacts: screenshots and Playwright traces under <home>/artifacts/<run-key>/."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetwright.browser.redaction import scrub_zip, secrets_for
from fleetwright.private import private_dir
from fleetwright.settings import get_settings
from fleetwright.specs import block_name_for

__all__ = ["SessionArtifacts", "default_run_key"]

logger = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def default_run_key(profile_name: str) -> str:
    """A unique, file-safe folder name for one session of `profile_name`."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{block_name_for(profile_name)}-{stamp}-{secrets.token_hex(3)}"


class SessionArtifacts:
    """The artifact folder of one session; created only when something is written to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: dict[str, Path] = {}
        self._tracing = False

    @classmethod
    def for_run(cls, run_key: str, *, home: Path | None = None) -> SessionArtifacts:
        base = (home or get_settings().home) / "artifacts"
        return cls(base / _SAFE.sub("-", run_key).strip(".-")[:120])

    def _target(self, name: str, suffix: str) -> Path:
        stem = _SAFE.sub("-", name).strip(".-")[:80] or "artifact"
        private_dir(self.root)
        path = self.root / f"{stem}{suffix}"
        n = 2
        while path.exists():
            path = self.root / f"{stem}-{n}{suffix}"
            n += 1
        return path

    async def screenshot(
        self, page: Any, name: str = "screenshot", *, full_page: bool = True
    ) -> Path:
        """Save a PNG of `page`; returns its path (also kept in `paths`)."""
        path = self._target(name, ".png")
        await page.screenshot(path=str(path), full_page=full_page)
        self.paths[path.stem] = path
        return path

    async def start_trace(self, context: Any) -> None:
        """Start recording a trace of `context` (screenshots, DOM snapshots, sources)."""
        await context.tracing.start(screenshots=True, snapshots=True, sources=False)
        self._tracing = True

    @property
    def tracing(self) -> bool:
        return self._tracing

    async def stop_trace(self, context: Any, *, keep: bool, name: str = "trace") -> Path | None:
        """Stop tracing; write trace.zip only when `keep`, with the secrets registered for
        `context` masked (fleetwright.browser.redaction). Returns the path or None."""
        if not self._tracing:
            return None
        self._tracing = False
        if not keep:
            await context.tracing.stop()
            return None
        path = self._target(name, ".zip")
        await context.tracing.stop(path=str(path))
        secrets = secrets_for(context)
        if secrets:
            await asyncio.to_thread(scrub_zip, path, secrets)
        self.paths[path.stem] = path
        return path
