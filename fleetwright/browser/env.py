"""The environment Chromium and the Playwright driver run with: an allow-list, not a deny-list.

A worker's environment holds database URLs, API keys and tokens under names nobody can
predict, and every process Chromium starts can read its own environment back
(/proc/PID/environ). So the browser's processes and the Node.js driver that launches them get
only what a browser needs to run — PATH, HOME, locale, display, fonts, temporary folders — and
nothing else unless the operator names it (`FLEETWRIGHT_BROWSER_ENV_ALLOW`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Mapping
from typing import Any

from fleetwright.errors import ConfigurationError

__all__ = [
    "ALLOWED",
    "ALLOWED_PREFIXES",
    "NEVER",
    "browser_env",
    "driver_env",
    "scrub_driver_env",
]

#: Variables a browser process may see: search path, home and user, locale and time zone,
#: the display (X11, Wayland, D-Bus session), fonts and temporary folders.
ALLOWED: frozenset[str] = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "XAUTHORITY",
        "DBUS_SESSION_BUS_ADDRESS",
        "FONTCONFIG_FILE",
        "FONTCONFIG_PATH",
        "TMPDIR",
        "TMP",
        "TEMP",
    }
)
#: Families allowed by prefix: locale categories and the XDG base folders.
ALLOWED_PREFIXES: tuple[str, ...] = ("LC_", "XDG_")
#: What the Playwright driver needs on top: where its browsers live, and its own switches.
_DRIVER_ALLOWED: frozenset[str] = frozenset(
    {
        "PLAYWRIGHT_BROWSERS_PATH",
        "PLAYWRIGHT_NODEJS_PATH",
        "PW_LANG_NAME",
        "PW_LANG_NAME_VERSION",
        "PW_CLI_DISPLAY_VERSION",
        "DEBUG",
    }
)


#: Credentials that never reach a browser or the driver, even when an operator allows them by
#: name: the Prefect API's (a page could read back every decrypted block with it) and
#: Fleetwright's own keys.
NEVER: frozenset[str] = frozenset(
    {
        "PREFECT_API_AUTH_STRING",
        "PREFECT_SERVER_API_AUTH_STRING",
        "PREFECT_API_KEY",
        "PREFECT_SERVER_ENCRYPTION_KEY",
        "FLEETWRIGHT_API_TOKEN",
        "FLEETWRIGHT_ENCRYPTION_KEY",
    }
)


def _allowed(name: str, extra: Collection[str]) -> bool:
    if name in NEVER:
        return False
    return name in ALLOWED or name in extra or name.startswith(ALLOWED_PREFIXES)


def browser_env(
    environ: Mapping[str, str] | None = None,
    *,
    allow: Collection[str] = (),
    add: Mapping[str, str] | None = None,
) -> dict[str, str | float | bool]:
    """The environment to launch Chromium with: the allowed variables of `environ` (default
    the process's), those named in `allow`, plus `add`."""
    environ = os.environ if environ is None else environ
    env: dict[str, str | float | bool] = {k: v for k, v in environ.items() if _allowed(k, allow)}
    env.update(add or {})
    return env


def driver_env(environ: Mapping[str, str], *, allow: Collection[str] = ()) -> dict[str, str]:
    """The environment to start the Playwright driver with (Playwright's own variables kept)."""
    return {k: v for k, v in environ.items() if _allowed(k, allow) or k in _DRIVER_ALLOWED}


_install_lock = threading.Lock()
_driver_allow: set[str] = set()


def scrub_driver_env(*, allow: Collection[str] = ()) -> None:
    """Make Playwright start its driver with `driver_env` instead of the whole environment,
    for every Playwright this process starts from now on (idempotent; `allow` adds names).

    Playwright has no option for its driver's environment, so this wraps the function its
    transport calls to build it. If that function is gone (a Playwright change), it refuses
    rather than hand the driver every secret.
    """
    from playwright._impl import transport

    with _install_lock:
        _driver_allow.update(allow)
        current: Any = getattr(transport, "get_driver_env", None)
        if getattr(current, "_fleetwright_scrubbed", False):
            return
        if current is None or not callable(current):
            raise ConfigurationError(
                "This Playwright version builds its driver environment differently; "
                "Fleetwright cannot keep secrets out of it. Install a Playwright release "
                "Fleetwright supports (see pyproject.toml)"
            )
        original = current

        def scrubbed() -> dict[str, str]:
            return driver_env(original(), allow=frozenset(_driver_allow))

        scrubbed._fleetwright_scrubbed = True  # type: ignore[attr-defined]
        setattr(transport, "get_driver_env", scrubbed)  # noqa: B010
