"""Where open profiles are announced on this machine, and how a close reaches their opener.

An opener writes `<home>/open/<profile>.json` (endpoint, pid, holder) while the profile is
open. `fleetwright profile close NAME` leaves `<profile>.close` beside it; the opener sees it,
saves and closes, and replaces the record with `<profile>.closed.json` (the saved version).
Files, not signals: an API server holding several open profiles closes just the one asked.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from fleetwright.browser.files import atomic_write_bytes
from fleetwright.browser.procs import alive
from fleetwright.errors import NotFoundError, StateError, ValidationError
from fleetwright.private import private_dir
from fleetwright.settings import get_settings
from fleetwright.specs import block_name_for, check_name

__all__ = [
    "close_requested_path",
    "finish_record",
    "open_records",
    "read_record",
    "request_close",
    "write_record",
]


def _dir() -> Path:
    return get_settings().home / "open"


def _base(name: str) -> Path:
    return _dir() / block_name_for(name)


def record_path(name: str) -> Path:
    return _base(name).with_suffix(".json")


def close_requested_path(name: str) -> Path:
    return _base(name).with_suffix(".close")


def _closed_path(name: str) -> Path:
    return _base(name).with_suffix(".closed.json")


def write_record(record: dict[str, Any]) -> None:
    """Announce an opened profile (and clear a stale close request or result)."""
    name = str(record["profile"])
    private_dir(_dir())
    close_requested_path(name).unlink(missing_ok=True)
    _closed_path(name).unlink(missing_ok=True)
    atomic_write_bytes(record_path(name), json.dumps(record).encode())


def finish_record(name: str, result: dict[str, Any]) -> None:
    """The profile is closed: leave the outcome for `close`, remove the record."""
    atomic_write_bytes(_closed_path(name), json.dumps(result).encode())
    record_path(name).unlink(missing_ok=True)
    close_requested_path(name).unlink(missing_ok=True)


def read_record(name: str) -> dict[str, Any] | None:
    """The record of an open profile whose opener is alive (stale ones are removed)."""
    path = record_path(name)
    try:
        record: dict[str, Any] = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not alive(int(record.get("pid", 0))):
        path.unlink(missing_ok=True)
        return None
    return record


def open_records() -> list[dict[str, Any]]:
    """Every profile open on this machine."""
    out = []
    for path in sorted(_dir().glob("*.json")) if _dir().is_dir() else []:
        if path.name.endswith(".closed.json"):
            continue
        try:
            name = str(json.loads(path.read_bytes())["profile"])
        except (OSError, ValueError, KeyError):
            continue
        record = read_record(name)
        if record is not None:
            out.append(record)
    return out


def request_close(name: str, *, wait: timedelta = timedelta(seconds=60)) -> dict[str, Any]:
    """Ask the opener of `name` to save and close; wait for it and return its outcome."""
    try:
        check_name(name)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    record = read_record(name)
    if record is None:
        raise NotFoundError(
            f"profile {name!r} is not open on this machine; see `fleetwright profile open`"
        )
    close_requested_path(name).write_text(str(os.getpid()))
    deadline = time.monotonic() + wait.total_seconds()
    while time.monotonic() < deadline:
        try:
            result: dict[str, Any] = json.loads(_closed_path(name).read_bytes())
        except (OSError, ValueError):
            if read_record(name) is None and not _closed_path(name).exists():
                raise StateError(
                    f"the opener of profile {name!r} went away without closing it; its state "
                    "was not saved and its lease expires by itself"
                ) from None
            time.sleep(0.1)
            continue
        _closed_path(name).unlink(missing_ok=True)
        return result
    raise StateError(
        f"profile {name!r} did not close within {wait.total_seconds():g}s; "
        f"its opener (pid {record.get('pid')}) may be busy saving — run close again"
    )
