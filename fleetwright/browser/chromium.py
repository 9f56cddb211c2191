"""Find a usable Chromium and the flags every Fleetwright launch passes to it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fleetwright.errors import ConfigurationError
from fleetwright.settings import Settings, get_settings

__all__ = [
    "BASE_ARGS",
    "DISABLED_FEATURES",
    "SYSTEM_CANDIDATES",
    "chromium_args",
    "find_chromium",
    "needs_no_sandbox",
]

logger = logging.getLogger(__name__)

#: Features turned off. Chromium keeps only the last --disable-features switch, and Playwright
#: passes one of its own first, so this list repeats Playwright's (1.65) and adds Fleetwright's:
#: without the repeat, NetworkTimeServiceQuerying comes back and persistent profiles query
#: clients2.google.com through their proxy.
DISABLED_FEATURES: tuple[str, ...] = (
    # Fleetwright's: background requests to Google services
    "AutofillServerCommunication",
    "Translate",
    # Playwright's: background requests
    "OptimizationHints",
    "NetworkTimeServiceQuerying",
    "AimEnabled",
    "PreconnectToSearch",
    "MediaRouter",
    # Playwright's: behaviour automation relies on
    "AvoidUnnecessaryBeforeUnloadCheckSync",
    "DestroyProfileOnBrowserClose",
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    "LensOverlay",
    "PaintHolding",
    "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect",
)

#: Flags that stop Chromium's own background traffic (it would leave through a profile's proxy).
BASE_ARGS: tuple[str, ...] = (
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=" + ",".join(DISABLED_FEATURES),
)

SYSTEM_CANDIDATES: tuple[str, ...] = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
)

INSTALL_HINT = (
    "install one with `apt-get install chromium` or `playwright install chromium`, "
    "or set FLEETWRIGHT_CHROMIUM_EXECUTABLE to a Chromium/Chrome binary"
)


def needs_no_sandbox() -> bool:
    """Chromium's sandbox cannot start as root."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def chromium_args(*extra: str) -> list[str]:
    """The command-line flags for every launch (no secrets ever go here)."""
    args = list(BASE_ARGS)
    if needs_no_sandbox():
        args.append("--no-sandbox")
    args.extend(extra)
    return args


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_chromium(
    settings: Settings | None = None, *, playwright_executable: str | None = None
) -> Path:
    """The Chromium to launch: settings, then Playwright's own, then the system's."""
    settings = settings or get_settings()
    configured = settings.chromium_executable
    if configured is not None:
        if _usable(configured):
            return configured
        raise ConfigurationError(
            f"FLEETWRIGHT_CHROMIUM_EXECUTABLE={configured} is not an executable file; "
            "fix the path or unset it to use Playwright's or the system's Chromium"
        )
    if playwright_executable and _usable(Path(playwright_executable)):
        return Path(playwright_executable)
    for candidate in SYSTEM_CANDIDATES:
        if _usable(Path(candidate)):
            logger.debug("Using system Chromium %s", candidate)
            return Path(candidate)
    raise ConfigurationError(f"No usable Chromium found; {INSTALL_HINT}")
