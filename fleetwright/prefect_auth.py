"""The credential of the local Prefect server: Prefect's basic API auth string, kept in the home.

`fleetwright up` starts its Prefect server with PREFECT_SERVER_API_AUTH_STRING set to this
credential, generated once into `<home>/prefect-api-auth` (0600). Every client that talks to
that server — the CLI, the Python API, workers, flow runs — gets it as PREFECT_API_AUTH_STRING
from `fleetwright.settings.apply_prefect_settings()` or from the environment `up` gives its
children; never on a command line. The UI asks for it once per browser (Prefect's login page).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fleetwright.errors import ConfigurationError
from fleetwright.private import write_private

__all__ = [
    "AUTH_FILE",
    "AUTH_USER",
    "auth_path",
    "ensure_auth",
    "hint",
    "new_auth",
    "read_auth",
    "rotate_auth",
]

AUTH_FILE = "prefect-api-auth"
#: The user part of the generated `user:password` string (what Prefect's login page suggests).
AUTH_USER = "fleetwright"


def auth_path(home: Path) -> Path:
    return home / AUTH_FILE


def new_auth() -> str:
    """A fresh `fleetwright:<random>` credential (URL-safe ASCII, as the UI's login needs)."""
    return f"{AUTH_USER}:{secrets.token_urlsafe(32)}"


def read_auth(home: Path) -> str | None:
    """The stored credential, or None when there is none (no `fleetwright up` yet)."""
    path = auth_path(home)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigurationError(
            f"cannot read the Prefect API credential {path} ({reason}); fix its permissions "
            "or run `fleetwright auth rotate` to write a new one"
        ) from None
    return value or None


def ensure_auth(home: Path) -> tuple[str, bool]:
    """The stored credential, generated first if there is none; and whether it was new."""
    current = read_auth(home)
    if current:
        return current, False
    value = new_auth()
    write_private(auth_path(home), value + "\n")
    return value, True


def rotate_auth(home: Path) -> str:
    """Replace the stored credential with a new one (servers started earlier keep the old)."""
    value = new_auth()
    write_private(auth_path(home), value + "\n")
    return value


def hint(value: str) -> str:
    """A reminder of which credential this is, never enough of it to use: `fleetwright:Ab…`."""
    user, _, password = value.partition(":")
    return f"{user}:{password[:2]}…" if password else f"{value[:2]}…"
