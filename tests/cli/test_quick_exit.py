"""The CLI's exit: the interpreter's final garbage collection is skipped (objects frozen), and
the catalogue's connections are still closed before the process ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# runs last of the atexit handlers (registered first): reports what the CLI's own left behind
_PROBE = """\
import atexit, gc, sys
atexit.register(lambda: sys.stderr.write(f"frozen={gc.get_freeze_count()}\\n"))
{body}
"""

_CLI = """\
from fleetwright.cli import main
sys.argv = ["fleetwright", "profile", "list"]
main()
"""

# the control: the catalogue used and the objects frozen, its connections never closed
_FROZEN_ONLY = """\
from sqlalchemy import text
from fleetwright.catalogue.db import session_scope
with session_scope() as s:
    s.execute(text("select count(*) from profiles"))
atexit.register(gc.freeze)
"""


def _run(body: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETWRIGHT_")}
    env["FLEETWRIGHT_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-c", _PROBE.replace("{body}", body)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _sqlite_leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in home.glob("catalogue.db-*"))


def test_cli_exit_freezes_objects_and_closes_the_catalogue(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = _run(_CLI, home)
    assert done.returncode == 0, done.stderr
    frozen = [line for line in done.stderr.splitlines() if line.startswith("frozen=")]
    assert frozen and int(frozen[-1].split("=")[1]) > 0, done.stderr
    assert (home / "catalogue.db").exists()
    # SQLite removes its -wal and -shm files when the last connection to the file closes
    assert _sqlite_leftovers(home) == []


def test_frozen_objects_without_closing_leave_the_connection_open(tmp_path: Path) -> None:
    """What the check above would see if the exit froze objects without closing the
    catalogue: SQLite's -wal and -shm files left behind by a connection never closed."""
    home = tmp_path / "home"
    done = _run(_FROZEN_ONLY, home)
    assert done.returncode == 0, done.stderr
    assert _sqlite_leftovers(home) == ["catalogue.db-shm", "catalogue.db-wal"]
