"""`fleetwright profile ...` against a real Prefect server and catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.prefect


def test_add_list_show_edit_archive(prefect_api: str, home: Path, cli) -> None:
    r = cli(
        "profile",
        "add",
        "Alice",
        "--tag",
        "qa",
        "--timezone",
        "Europe/Berlin",
        "--locale",
        "de-DE",
        "--viewport",
        "1366x768",
        "--json",
    )
    assert r.code == 0, r.err
    added = r.json()
    assert added["fingerprint"]["timezone"] == "Europe/Berlin"
    assert added["block_document_id"]

    r = cli("profile", "list", "--tag", "qa", "--json")
    assert [p["name"] for p in r.json()] == ["Alice"]

    r = cli("profile", "edit", "Alice", "--add-tag", "de", "--color-scheme", "dark", "--json")
    assert r.code == 0, r.err
    assert r.json()["tags"] == ["de", "qa"]
    assert r.json()["fingerprint"]["viewport_width"] == 1366  # untouched fields stay

    r = cli("profile", "archive", "Alice")
    assert r.code == 0
    assert cli("profile", "show", "Alice", "--json").json()["status"] == "archived"

    r = cli("profile", "list")
    assert "Alice" in r.out and r.code == 0


def test_profile_appears_as_block(prefect_api: str, home: Path, cli) -> None:
    import asyncio

    from fleetwright.blocks import BrowserProfile

    assert cli("profile", "add", "Bob Block", "--timezone", "Asia/Tokyo").code == 0
    record = cli("profile", "show", "Bob Block", "--json").json()
    block = asyncio.run(BrowserProfile.aload(record["block_name"]))
    assert block.name == "Bob Block"
    assert block.fingerprint.timezone == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["profile", "add", ""], "name is empty"),
        (["profile", "add", "x" * 65], "limit is 64"),
        (["profile", "add", "a/b"], "path separator"),
        (["profile", "add", "a..b"], "'..'"),
        (["profile", "add", "bad\x07name"], "control characters"),
        (["profile", "add", "tz", "--timezone", "Mars/Olympus"], "unknown timezone"),
        (["profile", "add", "loc", "--locale", "zz-ZZ"], "unknown locale"),
        (["profile", "add", "px", "--proxy", "nope"], "unknown proxy 'nope'"),
        (["profile", "show", "ghost"], "unknown profile 'ghost'"),
        (["profile", "edit", "ghost", "--notes", "x"], "unknown profile 'ghost'"),
        (["profile", "list", "--tag", "no-such-tag"], "no profile has tag"),
        (["profile", "add", "vp", "--viewport", "big"], "WIDTHxHEIGHT"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    prefect_api: str, home: Path, cli, args: list[str], needle: str
) -> None:
    r = cli(*args)
    assert r.code == 2
    assert needle in r.err
    assert "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1
    # nothing half-written
    assert cli("profile", "list", "--json").json() == []


def test_duplicate_name(prefect_api: str, home: Path, cli) -> None:
    assert cli("profile", "add", "dup").code == 0
    r = cli("profile", "add", "dup")
    assert r.code == 2 and "already exists" in r.err
    assert len(cli("profile", "list", "--json").json()) == 1


def test_import_reports_bad_items_and_does_not_duplicate(
    prefect_api: str, home: Path, tmp_path: Path, cli
) -> None:
    items = [
        {"name": "imp-1", "tags": ["bulk"]},
        {"name": "imp-2", "fingerprint": {"timezone": "Nowhere/Land"}},
        {"name": "imp-3", "tags": ["bulk"], "bogus": 1},
        "not an object",
        {"name": "imp-4", "state_mode": "persistent"},
    ]
    f = tmp_path / "profiles.json"
    f.write_text(json.dumps(items))
    r = cli("profile", "import", str(f))
    assert r.code == 1
    assert "2 created" in r.out and "3 rejected" in r.out
    assert "item 2 ('imp-2')" in r.err and "unknown timezone" in r.err
    assert "item 3 ('imp-3')" in r.err and "bogus: unknown field" in r.err
    assert "item 4: not a JSON object" in r.err
    r = cli("profile", "import", str(f))
    assert "0 created" in r.out and "2 unchanged" in r.out
    names = [p["name"] for p in cli("profile", "list", "--json").json()]
    assert names == ["imp-1", "imp-4"]

    exported = tmp_path / "out.json"
    assert cli("profile", "export", "-o", str(exported)).code == 0
    assert {p["name"] for p in json.loads(exported.read_text())} == {"imp-1", "imp-4"}


def test_malformed_import_file(prefect_api: str, home: Path, tmp_path: Path, cli) -> None:
    f = tmp_path / "broken.json"
    f.write_text('[{"name": "a"},\n {"name": }]')
    r = cli("profile", "import", str(f))
    assert r.code == 2
    assert "line 2" in r.err and "not valid JSON" in r.err
    r = cli("profile", "import", str(tmp_path / "missing.json"))
    assert r.code == 2 and "does not exist" in r.err


def test_unreachable_database_names_url_without_password(
    home: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetwright.settings import reset_settings

    monkeypatch.setenv(
        "FLEETWRIGHT_DATABASE_URL", "postgresql+psycopg://fw:s3cretpw@127.0.0.1:1/fleet"
    )
    reset_settings()
    r = cli("profile", "list")
    assert r.code == 2
    assert "127.0.0.1:1/fleet" in r.err and "unreachable" in r.err
    assert "s3cretpw" not in r.err
    r = cli("db", "upgrade")
    assert r.code == 2 and "s3cretpw" not in r.err


def test_unreachable_api_leaves_the_block_pending(
    prefect_api: str,
    home: Path,
    cli,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No Prefect API: the profile is added (runnable), its block pending, one warning; the
    next write that reaches the API projects it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    from fleetwright.settings import reset_settings

    monkeypatch.setenv("FLEETWRIGHT_PREFECT_API_URL", f"http://u:api-s3cret@127.0.0.1:{closed}/api")
    reset_settings()
    with caplog.at_level("WARNING"):
        r = cli("profile", "add", "offline")
    assert r.code == 0, r.err
    assert "not written yet" in r.err and "Traceback" not in r.err
    assert "stay pending" in caplog.text and "api-s3cret" not in caplog.text + r.err
    assert cli("profile", "show", "offline", "--json").json()["block_pending"] is True
    monkeypatch.delenv("FLEETWRIGHT_PREFECT_API_URL")
    reset_settings()
    assert cli("sync").code == 0
    shown = cli("profile", "show", "offline", "--json").json()
    assert shown["block_pending"] is False and shown["block_document_id"]
