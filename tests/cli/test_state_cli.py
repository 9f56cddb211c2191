"""`fleetwright profile state list|rollback` on versions saved by the state store."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetwright.browser import BrowserState, StateStore
from fleetwright.registry import get_profile
from fleetwright.sessions import lease

pytestmark = pytest.mark.prefect


def _state(value: str) -> BrowserState:
    return BrowserState(
        storage={
            "cookies": [],
            "origins": [
                {"origin": "http://127.0.0.1", "localStorage": [{"name": "k", "value": value}]}
            ],
        },
        session_storage={},
    )


def test_list_and_rollback(prefect_api: str, home: Path, cli) -> None:
    assert cli("profile", "add", "stateful").code == 0
    store = StateStore()
    store.save("stateful", _state("one"))
    store.save("stateful", _state("two"))

    rows = cli("profile", "state", "list", "stateful", "--json").json()
    assert [(r["version"], r["current"]) for r in rows] == [(2, "✓"), (1, "")]

    r = cli("profile", "state", "rollback", "stateful", "1")
    assert r.code == 0, r.err
    loaded = store.load("stateful")
    assert loaded is not None
    assert loaded.storage["origins"][0]["localStorage"][0]["value"] == "one"

    r = cli("profile", "state", "rollback", "stateful", "7")
    assert r.code == 2 and "7" in r.err
    assert store.current_version("stateful") == 1


def test_rollback_refused_while_a_run_holds_the_profile(prefect_api: str, home: Path, cli) -> None:
    from datetime import timedelta

    assert cli("profile", "add", "busy").code == 0
    store = StateStore()
    store.save("busy", _state("a"))
    store.save("busy", _state("b"))
    profile_id = get_profile("busy")["id"]
    assert lease.acquire(profile_id, "run-42", timedelta(seconds=30))
    r = cli("profile", "state", "rollback", "busy", "1")
    assert r.code == 2 and "in use" in r.err
    assert store.current_version("busy") == 2
    lease.release(profile_id, "run-42")
    assert cli("profile", "state", "rollback", "busy", "1").code == 0
