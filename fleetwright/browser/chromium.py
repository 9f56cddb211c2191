"""Find a usable Chromium, and the flags, launch options and profile preferences every
Fleetwright launch uses (the one definition for the browser pool and the profile opener)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleetwright.errors import ConfigurationError
from fleetwright.settings import Settings, get_settings

__all__ = [
    "BASE_ARGS",
    "DISABLED_FEATURES",
    "QUIET_PREFERENCES",
    "SYSTEM_CANDIDATES",
    "chromium_args",
    "find_chromium",
    "find_headless_shell",
    "launch_options",
    "needs_no_sandbox",
    "quiet_profile",
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

#: Where browser sign-in's account checks go: an origin on port 1, which Chromium refuses to
#: connect to (ERR_UNSAFE_PORT) before any proxy is involved. Without it every persistent
#: profile POSTs accounts.google.com/ListAccounts at startup and retries with back-off.
NO_SIGNIN_ORIGIN = "https://signin.invalid:1"

#: An empty model-manifest configuration: Chromium reads its on-device AI model manifest from
#: here instead of asking update.googleapis.com for it on demand (which --disable-component-update
#: does not stop).
NO_MODELS_MANIFEST = Path(__file__).with_name("no-model-manifest.json")

#: Flags that stop Chromium's own background traffic (it would leave through a profile's proxy).
BASE_ARGS: tuple[str, ...] = (
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=" + ",".join(DISABLED_FEATURES),
    f"--gaia-url={NO_SIGNIN_ORIGIN}",
    f"--optimization-guide-manifest-override={NO_MODELS_MANIFEST}",
)

#: Profile preferences merged into a persistent profile's Default/Preferences before each
#: launch: no password leak check (it sends a hash of a filled-in password to
#: passwordsleakcheck-pa.googleapis.com through the profile's proxy).
QUIET_PREFERENCES: dict[str, dict[str, Any]] = {
    "profile": {"password_manager_leak_detection": False},
}

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


def launch_options(
    executable: Path,
    *,
    headless: bool,
    env: Mapping[str, str | float | bool],
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Playwright's launch keywords for every Fleetwright browser, shared or persistent."""
    return {
        "executable_path": str(executable),
        "args": chromium_args(*extra),
        "headless": headless,
        "chromium_sandbox": not needs_no_sandbox(),
        "env": dict(env),
        "handle_sigint": False,
        "handle_sigterm": False,
        "handle_sighup": False,
    }


def _merge(into: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def quiet_profile(user_data_dir: Path) -> None:
    """Merge QUIET_PREFERENCES into a user-data-dir's Default/Preferences before a launch
    (keeping everything else the profile has saved; an unreadable file is started afresh,
    as Chromium itself would)."""
    prefs_file = user_data_dir / "Default" / "Preferences"
    data: dict[str, Any] = {}
    try:
        loaded = json.loads(prefs_file.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            data = loaded
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        logger.warning("Unreadable Chromium preferences in %s; starting them afresh", prefs_file)
    _merge(data, QUIET_PREFERENCES)
    prefs_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = prefs_file.with_name("Preferences.fleetwright-tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(prefs_file)


#: Where Debian's `chromium-headless-shell` package puts Chromium's headless shell: the binary
#: itself first (its /usr/bin wrapper runs it as a child rather than in its place).
HEADLESS_SHELL_CANDIDATES: tuple[str, ...] = (
    "/usr/lib/chromium/chromium-headless-shell",
    "/usr/bin/chromium-headless-shell",
)


def find_headless_shell(settings: Settings | None = None) -> Path | None:
    """The headless shell to run shared headless browsers in, when the settings ask for one
    (FLEETWRIGHT_HEADLESS_SHELL: a path, or `auto`); None when they do not."""
    settings = settings or get_settings()
    wanted = (settings.headless_shell or "").strip()
    if not wanted or wanted.lower() in ("off", "false", "0", "no"):
        return None
    if wanted.lower() == "auto":
        for candidate in HEADLESS_SHELL_CANDIDATES:
            if _usable(Path(candidate)):
                return Path(candidate)
        raise ConfigurationError(
            "FLEETWRIGHT_HEADLESS_SHELL=auto found no headless shell; install one with "
            "`apt-get install chromium-headless-shell`, give its path, or unset the setting"
        )
    path = Path(wanted).expanduser()
    if not _usable(path):
        raise ConfigurationError(
            f"FLEETWRIGHT_HEADLESS_SHELL={wanted} is not an executable file; fix the path, "
            "use `auto`, or unset it to run sessions in the full Chromium"
        )
    return path


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
