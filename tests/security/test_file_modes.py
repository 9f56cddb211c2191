"""What Fleetwright writes into its home is its owner's only: the home 0700, files 0600 —
created so through the real code paths under a permissive umask (022), and tightened on start
where an older version or another tool left them open."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetwright.private import secure_tree


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def _fleetwright() -> list[str]:
    script = Path(sys.executable).parent / "fleetwright"
    return [str(script)] if script.exists() else [sys.executable, "-m", "fleetwright.cli"]


def test_cli_creates_a_private_home_and_catalogue(tmp_path: Path) -> None:
    """A user's first command, from a shell with umask 022: the home and the SQLite catalogue
    (and SQLite's -wal/-shm beside it) are private, and so is Prefect's folder in the home."""
    home = tmp_path / "a" / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETWRIGHT_", "PREFECT_"))}
    env["FLEETWRIGHT_HOME"] = str(home)
    done = subprocess.run(
        [*_fleetwright(), "profile", "add", "modes-1", "--tag", "qa"],
        env=env, capture_output=True, text=True, timeout=180, umask=0o022, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert mode(home) == 0o700 and mode(home.parent) == 0o700  # created by Fleetwright
    assert mode(home / "prefect") == 0o700
    db_files = list(home.glob("catalogue.db*"))
    assert home / "catalogue.db" in db_files
    for path in db_files:
        assert mode(path) == 0o600, (path, oct(mode(path)))
    for path in home.rglob("*"):
        assert not mode(path) & 0o077, (path, oct(mode(path)))


async def test_states_logs_and_credentials_are_private(home: Path) -> None:
    """The Python API's paths (no CLI umask): a saved browser state (cookies), a child's log,
    the Prefect API credential, the local API's token and the catalogue, all 0600 in 0700."""
    from fleetwright.browser import BrowserState, StateStore
    from fleetwright.catalogue.db import session_scope
    from fleetwright.catalogue.models import Profile
    from fleetwright.prefect_auth import auth_path, ensure_auth, rotate_auth
    from fleetwright.processes import start_process, stop_process
    from fleetwright.settings import get_settings

    with umask(0o022):
        url = get_settings().catalogue_url
        with session_scope(url) as session:
            session.add(Profile(name="ann"))
        store = StateStore(url, home=home)
        cookie = {"name": "sid", "value": "s3cr3t", "domain": "127.0.0.1", "path": "/"}
        store.save("ann", BrowserState(storage={"cookies": [cookie], "origins": []}))
        saved = store.versions("ann")[0].path
        log = home / "logs" / "child.log"
        proc = start_process([sys.executable, "-c", "print('hi')"], {}, log_path=log)
        proc.wait(timeout=60)
        stop_process(proc)
        ensure_auth(home)
        rotate_auth(home)
        from fleetwright.cli.api import api_token

        _token, token_file = api_token()
    assert mode(home) == 0o700
    assert mode(saved) == 0o600 and mode(saved.parent) == 0o700
    assert mode(home / "profiles") == 0o700
    assert mode(log) == 0o600 and mode(log.parent) == 0o700
    assert mode(auth_path(home)) == 0o600
    assert token_file is not None and mode(token_file) == 0o600
    assert mode(home / "catalogue.db") == 0o600
    assert not [p for p in home.iterdir() if p.name.startswith(".prefect-api-auth.tmp")]


def test_children_create_private_files(tmp_path: Path) -> None:
    """Processes Fleetwright starts (Prefect server, workers, flow runs) run with umask 077:
    what they create themselves is private too."""
    from fleetwright.processes import start_process

    target = tmp_path / "made-by-child"
    with umask(0o022):
        proc = start_process(
            [sys.executable, "-c", f"open({str(target)!r}, 'w').write('x')"],
            {},
            log_path=tmp_path / "logs" / "c.log",
        )
        assert proc.wait(timeout=60) == 0
    assert mode(target) == 0o600


@pytest.mark.prefect
def test_the_local_prefect_server_writes_private_files(prefect_api: str) -> None:
    """The session's server (LocalPrefectServer, as `up` starts it): its home and log."""
    server_home = Path(os.environ["FLEETWRIGHT_HOME"]) / "prefect-server"
    assert mode(server_home / "server.log") == 0o600
    for path in server_home.rglob("*"):
        assert not mode(path) & 0o077, (path, oct(mode(path)))


def test_secure_tree_tightens_what_was_left_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "profiles" / "ann").mkdir(parents=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    files = [home / "catalogue.db", home / "profiles" / "ann" / "v1.json", home / "old.log"]
    for path in files:
        path.write_text("x")
        path.chmod(0o644)
    for folder in (home / "profiles" / "ann", home / "profiles", home):
        folder.chmod(0o755)
    (home / "link").symlink_to(outside)
    (home / "group-writable").write_text("x")
    (home / "group-writable").chmod(0o664)
    assert secure_tree(home) == 7  # three folders, four files; not the link
    assert mode(home) == 0o700
    assert mode(home / "profiles") == 0o700 and mode(home / "profiles" / "ann") == 0o700
    assert all(mode(p) == 0o600 for p in files)
    assert mode(home / "group-writable") == 0o600
    assert mode(outside) == 0o644  # a link's target is not the home's to change
    assert secure_tree(home) == 0


def test_the_cli_runs_private_and_gives_the_umask_back(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Called in-process (a script, a test), the CLI's umask 077 lasts as long as the command."""
    from fleetwright.cli.main import main

    with umask(0o022):
        with pytest.raises(SystemExit):
            main(["auth", "rotate", "--bogus"])
        main(["auth", "rotate"])
        assert os.umask(0o022) == 0o022
    assert mode(home / "prefect-api-auth") == 0o600
    assert "prefect-api-auth" in capsys.readouterr().out
