"""`fleetwright run` and `fleetwright schedule`: bad input is one line and exit 2 before
anything is submitted; a local run prints its summary and exits 0 / 1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetwright.commands import load_commands
from fleetwright.testing.site import SiteServer, serve_site

pytestmark = [pytest.mark.prefect]

COMMANDS = {
    "counted.yaml": """\
name: counted
version: "1"
params:
  base_url: {type: str}
  count: {type: int}
steps:
  - goto: "{{ params.base_url }}/"
""",
    "nope-check.yaml": """\
name: nope-check
version: "1"
params:
  base_url: {type: str}
steps:
  - goto: "{{ params.base_url }}/"
  - assert: {text: {selector: "h1", equals: "not the title"}}
    timeout: 1
""",
}


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with serve_site() as server:
        yield server


@pytest.fixture
def fleet(prefect_api: str, home: Path, tmp_path: Path) -> list[str]:
    from fleetwright.registry import archive_profile, import_profiles

    for name, text in COMMANDS.items():
        (tmp_path / name).write_text(text)
    load_commands([tmp_path])
    load_commands()
    items = [(f"i{i}", {"name": f"cli{i}", "tags": ["cli"]}) for i in range(2)]
    items.append(("old", {"name": "old0", "tags": ["gone"]}))
    report = asyncio.run(import_profiles(items))
    assert not report.errors
    asyncio.run(archive_profile("old0"))
    return ["cli0", "cli1"]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from fleetwright.cli.main import main

    try:
        main(list(argv))
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return (code if isinstance(code, int) else 0), out, err


async def _flow_run_count() -> int:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.count_flow_runs()


BAD_RUNS = [
    (["run", "nope", "--tag", "cli"], "unknown command 'nope'"),
    (["run", "counted", "ghost", "-p", "count=1", "-p", "base_url=x"], "unknown profile 'ghost'"),
    (["run", "counted", "--tag", "ghost", "-p", "count=1", "-p", "base_url=x"],
     "no profile has tag 'ghost'"),
    (["run", "counted", "-p", "count=1", "-p", "base_url=x"], "select profiles"),
    (["run", "counted", "--tag", "gone", "-p", "count=1", "-p", "base_url=x"],
     "selection is empty"),
    (["run", "counted", "--tag", "cli", "-p", "base_url=x"], "parameter 'count' (int) is required"),
    (["run", "counted", "--tag", "cli", "-p", "count=two", "-p", "base_url=x"],
     "parameter 'count': expected int"),
    (["run", "counted", "--tag", "cli", "-p", "count=1", "-p", "base_url=x", "-p", "colour=red"],
     "unknown parameter 'colour'"),
    (["run", "counted", "--tag", "cli", "-p", "count"], "--param 'count' is not key=value"),
    (["run", "counted", "--tag", "cli", "-p", "count=1", "-p", "base_url=x", "--trace", "always"],
     "--trace 'always' is not one of off, on, on-failure, on-retry"),
    (["schedule", "add", "counted", "--tag", "cli", "--cron", "61 * * * *", "-p", "count=1",
      "-p", "base_url=x"], "--cron '61 * * * *'"),
    (["schedule", "add", "counted", "--tag", "cli", "--cron", "0 * * * *", "--timezone",
      "Mars/Olympus", "-p", "count=1", "-p", "base_url=x"], "--cron '0 * * * *'"),
    (["schedule", "add", "counted", "--tag", "cli", "--rrule", "FREQ=SOMETIMES",
      "-p", "count=1", "-p", "base_url=x"], "--rrule 'FREQ=SOMETIMES'"),
    (["schedule", "add", "counted", "--tag", "cli", "--interval", "0", "-p", "count=1",
      "-p", "base_url=x"], "interval must be more than 0"),
    (["schedule", "add", "counted", "--tag", "cli", "--interval", "60", "--cron", "0 * * * *",
      "-p", "count=1", "-p", "base_url=x"], "exactly one of --cron, --interval or --rrule"),
    (["schedule", "add", "counted", "--tag", "ghost", "--interval", "60", "-p", "count=1",
      "-p", "base_url=x"], "no profile has tag 'ghost'"),
    (["schedule", "pause", "never-added"], "no schedule named 'never-added'"),
]  # fmt: skip


def test_bad_input_is_one_line_exit_2_and_submits_nothing(
    fleet: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetwright.fleet.schedules import alist_schedules

    before = asyncio.run(_flow_run_count())
    for argv, message in BAD_RUNS:
        code, out, err = _cli(capsys, *argv)
        assert code == 2, (argv, out, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (argv, err)
        assert message in " ".join(err.split()), (argv, err)
        assert "Traceback" not in err + out
    assert asyncio.run(_flow_run_count()) == before
    assert asyncio.run(alist_schedules()) == []


@pytest.mark.browser
def test_local_run_prints_summary_and_exit_codes(
    fleet: list[str],
    site: SiteServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fleetwright.cli.output import console

    monkeypatch.setattr(console, "width", 240)  # keep the reasons on one line
    code, out, err = _cli(capsys, "run", "counted", "--tag", "cli", "-p", "count=3",
                          "-p", f"base_url={site.url}", "--local", "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out[out.index("{") :])
    assert (data["ok"], data["failed"], data["state"]) == (2, 0, "COMPLETED")
    assert sorted(s["profile"] for s in data["sessions"]) == fleet

    code, out, err = _cli(capsys, "run", "nope-check", *fleet, "-p", f"base_url={site.url}",
                          "--local")  # fmt: skip
    assert code == 1, err
    assert "0 ok, 2 failed, 0 skipped" in " ".join(out.split())
    assert "should equal 'not the title'" in " ".join(out.split())
