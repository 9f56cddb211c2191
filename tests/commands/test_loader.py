"""Loading command files into the catalogue (SQLite and Postgres) and looking them up."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Command
from fleetwright.commands import default_command_dirs, get_command, list_commands, load_commands
from fleetwright.commands.loader import checksum
from fleetwright.errors import CommandSpecError, NotFoundError, TemplateError


def write(folder: Path, name: str, command: str, version: str, url: str = "about:blank") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        f"name: {command}\nversion: '{version}'\nsteps:\n  - goto: '{url}'\n", encoding="utf-8"
    )
    return path


def count_rows(url: str) -> int:
    with session_scope(url) as session:
        return int(session.scalar(select(func.count()).select_from(Command)) or 0)


@pytest.mark.postgres
def test_load_reload_and_lookup(catalogue_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "commands"
    write(folder, "a.yaml", "shop", "1")
    write(folder, "b.yaml", "shop", "1.9")
    write(folder, "c.yml", "shop", "1.10")
    write(folder, "d.yaml", "other", "2")
    (folder / "notes.txt").write_text("not a command")

    report = load_commands([folder], url=catalogue_url)
    assert sorted(report.added) == ["other@2", "shop@1", "shop@1.10", "shop@1.9"]
    assert report.files == 4

    again = load_commands([folder], url=catalogue_url)
    assert again.added == [] and len(again.unchanged) == 4
    assert count_rows(catalogue_url) == 4

    latest = get_command("shop", url=catalogue_url)
    assert latest.version == "1.10"  # numeric, not text order
    assert get_command("shop", version="1.9", url=catalogue_url).version == "1.9"
    assert [s.ref for s in list_commands(url=catalogue_url)] == [
        "other@2",
        "shop@1",
        "shop@1.9",
        "shop@1.10",
    ]
    with session_scope(catalogue_url) as session:
        row = session.scalars(select(Command).where(Command.version == "1.10")).one()
        assert row.source == str((folder / "c.yml").resolve())
        assert row.checksum == checksum(latest)
        assert row.spec["steps"][0]["action"] == "goto"


def test_changed_content_needs_a_new_version(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "commands"
    path = write(folder, "shop.yaml", "shop", "1")
    load_commands([folder])
    # comments and formatting are not changes
    path.write_text("# the shop\n" + path.read_text() + "\n\n")
    assert load_commands([folder]).unchanged == ["shop@1"]

    write(folder, "shop.yaml", "shop", "1", url="http://127.0.0.1/changed")
    write(folder, "new.yaml", "fresh", "1")
    with pytest.raises(CommandSpecError) as info:
        load_commands([folder])
    message = str(info.value)
    assert "command shop@1 is already loaded" in message
    assert "bump `version:` to load the change" in message
    # all or nothing: the new file was not stored, the old content is intact
    assert get_command("shop").steps[0].url == "about:blank"  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        get_command("fresh")

    write(folder, "shop.yaml", "shop", "2", url="http://127.0.0.1/changed")
    report = load_commands([folder])
    assert sorted(report.added) == ["fresh@1", "shop@2"]
    assert get_command("shop").version == "2"


def test_a_bad_file_stores_nothing(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "commands"
    write(folder, "a.yaml", "good", "1")
    (folder / "b.yaml").write_text("name: bad\nversion: '1'\nsteps:\n  - clik: a\n")
    (folder / "c.yaml").write_text("name: [unclosed\n")
    with pytest.raises(CommandSpecError) as info:
        load_commands([folder])
    assert str(info.value).endswith(
        "b.yaml:4: step 1: unknown step kind 'clik'; known: goto, click, fill, press, select, "
        "check, hover, wait_for, extract, screenshot, evaluate, assert, download, upload, scroll, "
        "sleep, github.create_issue, github.comment, github.add_labels, github.close_issue, "
        "github.put_file, github.dispatch_workflow, github.search_issues, github.get_repo, "
        "openai.respond, python (1 more file(s) with errors)"
    )
    assert count_rows(f"sqlite:///{home / 'catalogue.db'}") == 0


def test_template_errors_keep_their_class(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nversion: '1'\nsteps:\n  - goto: '{{ params.nope }}'\n")
    with pytest.raises(TemplateError, match="declares no parameter 'nope'"):
        load_commands([path])


def test_same_command_in_two_files(home: Path, tmp_path: Path) -> None:
    write(tmp_path / "x", "one.yaml", "dup", "1")
    write(tmp_path / "y", "two.yaml", "dup", "1", url="http://127.0.0.1/")
    with pytest.raises(CommandSpecError, match="command dup@1 is also defined in"):
        load_commands([tmp_path / "x", tmp_path / "y"])


def test_missing_folder(home: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandSpecError, match="nowhere: no such file or folder"):
        load_commands([tmp_path / "nowhere"])


def test_not_found_messages(home: Path, tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "alpha", "1")
    write(tmp_path, "b.yaml", "alpha", "2")
    load_commands([tmp_path])
    with pytest.raises(NotFoundError) as info:
        get_command("beta")
    assert str(info.value).startswith("unknown command 'beta' (known: alpha")
    with pytest.raises(
        NotFoundError, match=r"command 'alpha' has no version '3' \(loaded versions: 1, 2\)"
    ):
        get_command("alpha", version="3")


def test_default_folders_include_project_and_home(home: Path) -> None:
    write(home / "commands", "mine.yaml", "mine", "1")
    dirs = default_command_dirs()
    project = Path(__file__).resolve().parents[2] / "commands"
    assert project in dirs
    assert (home / "commands").resolve() in dirs
    report = load_commands()
    assert "mine@1" in report.added
    assert "demo@1" in report.added


@pytest.mark.postgres
def test_concurrent_loads_of_the_same_files(pg_url: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from fleetwright.catalogue.db import upgrade

    upgrade(pg_url)  # workers meet an already-migrated catalogue
    for i in range(5):
        write(tmp_path, f"c{i}.yaml", f"cmd{i}", "1")
    load = lambda _: load_commands([tmp_path], url=pg_url)  # noqa: E731
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(load, range(4)))
    assert sorted(ref for r in reports for ref in r.added) == [f"cmd{i}@1" for i in range(5)]
    assert count_rows(pg_url) == 5
