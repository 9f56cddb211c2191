"""StateStore: versioned, atomic saves in the catalogue (SQLite and Postgres), rollback, pruning,
and a real process SIGKILLed while saving leaves the previous version usable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fleetwright.browser import BrowserState, StateStore
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, ProfileState
from fleetwright.errors import NotFoundError, StateError
from fleetwright.settings import reset_settings


def state(value: str, *, pad: int = 0) -> BrowserState:
    cookie = {
        "name": "sid",
        "value": value,
        "domain": "127.0.0.1",
        "path": "/",
        "expires": -1,
        "httpOnly": True,
        "secure": False,
        "sameSite": "Lax",
    }
    origin = {"origin": "http://127.0.0.1:1", "localStorage": [{"name": "k", "value": value}]}
    if pad:
        origin["localStorage"].append({"name": "pad", "value": "x" * pad})
    return BrowserState(
        storage={"cookies": [cookie], "origins": [origin]},
        session_storage={"http://127.0.0.1:1": {"s": value}},
    )


def add_profile(url: str, name: str) -> None:
    with session_scope(url) as session:
        session.add(Profile(name=name))


@pytest.mark.postgres
async def test_save_load_versions_rollback(catalogue_url: str, home: Path) -> None:
    store = StateStore(catalogue_url, home=home)
    add_profile(catalogue_url, "ann")
    assert store.load("ann") is None
    assert store.save("ann", state("one"), run_id=7) == 1
    assert store.save("ann", state("two")) == 2
    loaded = store.load("ann")
    assert loaded is not None and loaded.session_storage == {"http://127.0.0.1:1": {"s": "two"}}
    listed = store.versions("ann")
    assert [(v.version, v.current, v.run_id) for v in listed] == [(2, True, None), (1, False, 7)]
    assert all(v.path.is_file() and v.path.is_relative_to(home / "profiles") for v in listed)
    store.rollback("ann", 1)
    assert store.load("ann") == state("one")
    assert store.save("ann", state("three")) == 3, "a save after rollback gets a new number"
    with pytest.raises(NotFoundError, match="no state version 9; saved versions: 3, 2, 1"):
        store.rollback("ann", 9)


def test_keeps_only_the_last_n_versions(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETWRIGHT_STATE_VERSIONS_KEPT", "2")
    reset_settings()
    store = StateStore()
    add_profile(store.url, "bo")
    for value in "abcd":
        store.save("bo", state(value))
    assert [v.version for v in store.versions("bo")] == [4, 3]
    files = {p.name for p in store.profile_dir("bo").iterdir()}
    assert files == {v.path.name for v in store.versions("bo")} and len(files) == 2
    store.rollback("bo", 3)
    store.save("bo", state("e"))
    assert [v.version for v in store.versions("bo")] == [5, 4]


def test_unknown_profile_and_corrupt_state(home: Path) -> None:
    store = StateStore()
    with pytest.raises(NotFoundError, match="'nobody' is not in the catalogue"):
        store.load("nobody")
    with pytest.raises(NotFoundError):
        store.save("nobody", state("x"))
    assert not store.profile_dir("nobody").exists(), "nothing left behind for an unknown profile"
    add_profile(store.url, "cy")
    store.save("cy", state("good"))
    store.save("cy", state("bad"))
    current = store.versions("cy")[0].path
    current.write_bytes(current.read_bytes()[:-5])
    with pytest.raises(StateError, match="version 2 of profile 'cy' is corrupt"):
        store.load("cy")
    store.rollback("cy", 1)
    assert store.load("cy") == state("good")
    current.unlink()
    store.rollback("cy", 2)
    with pytest.raises(StateError, match="cannot be read"):
        store.load("cy")


def test_orphan_files_from_an_interrupted_save_are_swept(home: Path) -> None:
    store = StateStore()
    add_profile(store.url, "di")
    store.save("di", state("a"))
    orphan = store.profile_dir("di") / "v000002-deadbeef.json"
    orphan.write_text("{}")  # written, but its process died before the catalogue switch
    assert store.load("di") == state("a")
    store.save("di", state("b"))
    assert not orphan.exists()
    assert store.load("di") == state("b")


_SAVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fleetwright.browser import BrowserState, StateStore
    url, home = sys.argv[1], Path(sys.argv[2])
    big = {"origin": "http://x", "localStorage": [{"name": "pad", "value": "y" * 150_000_000}]}
    store = StateStore(url, home=home)
    print("saving", flush=True)
    store.save("ed", BrowserState(storage={"cookies": [], "origins": [big]}))
    print("saved", flush=True)
    """
)


@pytest.mark.postgres
def test_sigkill_while_saving_keeps_the_previous_version(catalogue_url: str, home: Path) -> None:
    store = StateStore(catalogue_url, home=home)
    add_profile(catalogue_url, "ed")
    store.save("ed", state("before"))
    folder = store.profile_dir("ed")
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVER, catalogue_url, str(home)],
        stdout=subprocess.PIPE,
        env={**os.environ, "FLEETWRIGHT_HOME": str(home)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"saving"
        deadline = time.monotonic() + 60
        tmp: list[Path] = []
        while not tmp and time.monotonic() < deadline and proc.poll() is None:
            tmp = [p for p in folder.glob(".v*.tmp-*") if p.stat().st_size > 0]
            time.sleep(0.001)
        assert tmp, "the saver never got to write its file"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert store.current_version("ed") == 1
    assert store.load("ed") == state("before")
    # the next save cleans up the half-written file and moves on
    assert store.save("ed", state("after")) == 2
    assert not list(folder.glob(".v*.tmp-*"))
    assert store.load("ed") == state("after")
    with session_scope(catalogue_url) as session:
        assert session.query(ProfileState).count() == 2


def test_persistent_checkout_commit_discard(home: Path) -> None:
    store = StateStore()
    add_profile(store.url, "fy")
    work = store.checkout("fy")
    assert work.is_dir() and list(work.iterdir()) == []
    (work / "Default").mkdir()
    (work / "Default" / "Cookies").write_text("v1")
    (work / "Default" / "Cache").mkdir()
    (work / "Default" / "Cache" / "blob").write_text("cache")
    assert store.commit("fy", work) == 1
    assert not work.exists()
    version_dir = store.versions("fy")[0].path
    assert (version_dir / "Default" / "Cookies").read_text() == "v1"
    assert not (version_dir / "Default" / "Cache").exists(), "caches are not versioned"
    scratch = store.checkout("fy")
    (scratch / "Default" / "Cookies").write_text("never saved")
    store.discard(scratch)
    again = store.checkout("fy")
    assert (again / "Default" / "Cookies").read_text() == "v1"
    assert (version_dir / "Default" / "Cookies").read_text() == "v1", "versions stay untouched"
    orphan = store.profile_dir("fy") / "p000007-deadbeef"
    orphan.mkdir()
    (again / "Default" / "Cookies").write_text("v2")
    assert store.commit("fy", again) == 2
    assert not orphan.exists()
    with pytest.raises(StateError, match="is gone"):
        store.commit("fy", again)
    with pytest.raises(StateError, match="has persistent state"):
        store.load("fy")


_COMMITTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fleetwright.browser import StateStore
    store = StateStore(sys.argv[1], home=Path(sys.argv[2]))
    work = Path(sys.argv[3])
    print("committing", flush=True)
    store.commit("gus", work)
    print("committed", flush=True)
    """
)


@pytest.mark.postgres
def test_sigkill_while_committing_persistent_keeps_the_previous_version(
    catalogue_url: str, home: Path
) -> None:
    store = StateStore(catalogue_url, home=home)
    add_profile(catalogue_url, "gus")
    first = store.checkout("gus")
    (first / "Cookies").write_text("before")
    store.commit("gus", first)
    work = store.checkout("gus")
    (work / "Cookies").write_text("after")
    cache = work / "Cache"
    cache.mkdir()
    for i in range(20000):  # pruning these before the switch takes a while
        (cache / f"f{i}").write_bytes(b"x")
    proc = subprocess.Popen(
        [sys.executable, "-c", _COMMITTER, catalogue_url, str(home), str(work)],
        stdout=subprocess.PIPE,
        env={**os.environ, "FLEETWRIGHT_HOME": str(home)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"committing"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if cache.exists() and len(os.listdir(cache)) < 19000:
                break
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "killed mid-commit, not after it"
    assert store.current_version("gus") == 1
    assert (store.checkout("gus") / "Cookies").read_text() == "before"
