"""Usage errors are one line on stderr and exit code 2, whatever click typer uses; `--help`
lists the command groups without importing them (nor Prefect)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

USAGE_ERRORS = [
    (["nosuch"], "No such command"),
    (["profile", "add"], "Missing argument"),
    (["profile", "add", "x", "--bogus"], "No such option: --bogus"),
    (["profile", "-x"], "No such option: -x"),
    (["profile", "add", "-x"], "No such option: -x"),
    (["profile", "list", "--limit", "many"], "--limit"),
    (["profile", "add", "x", "--tag"], "requires an argument"),
    (["run", "demo", "--concurrency", "abc"], "--concurrency"),
    (["run", "demo", "--concurrency", "0"], "--concurrency"),
    (["run", "demo", "--concurrency", "-5"], "--concurrency"),
    (["schedule", "add", "demo", "--interval", "soon"], "--interval"),
    (["proxy", "add"], "Missing argument"),
    (["service", "add"], ""),
    (["worker", "start", "--limit", "0"], "--limit"),
]


@pytest.mark.parametrize(("args", "needle"), USAGE_ERRORS, ids=lambda a: " ".join(a))
def test_usage_error_is_one_line_exit_2(cli, home: Path, args: list[str], needle: str) -> None:
    r = cli(*args)
    if args == ["service", "add"]:  # a group without its subcommand: its help, exit 2
        assert r.code == 2 and "Usage" in r.out
        return
    assert r.code == 2, (r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in r.err + r.out


def test_usage_error_end_to_end(tmp_path: Path) -> None:
    """The console script itself: exit 2, one stderr line, nothing on stdout."""
    env = {**os.environ, "FLEETWRIGHT_HOME": str(tmp_path / "fw")}
    exe = Path(sys.executable).with_name("fleetwright")
    for args in (["run", "demo", "--concurrency", "abc"], ["profile", "add", "a", "--nope"]):
        done = subprocess.run(
            [str(exe), *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 2, done
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stdout == ""
    assert not (tmp_path / "fw" / "catalogue.db").exists()


def test_help_does_not_import_groups_or_prefect(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from fleetwright.cli import main\n"
        "code = 0\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "mods = [m for m in sys.modules if m == 'prefect' or m.startswith('fleetwright.cli.')]\n"
        "print(code, sorted(mods), file=sys.stderr)\n"
    )
    env = {**os.environ, "FLEETWRIGHT_HOME": str(tmp_path / "fw")}
    for args, allowed in (
        (["--help"], {"fleetwright.cli.main"}),
        (
            ["profile", "--help"],
            # profile open/close are the profile group's, in a module of their own
            {"fleetwright.cli.main", "fleetwright.cli.profile", "fleetwright.cli.profile_open"},
        ),
        (["proxy", "--help"], {"fleetwright.cli.main", "fleetwright.cli.proxy"}),
        (["service", "--help"], {"fleetwright.cli.main", "fleetwright.cli.service"}),
        (["schedule", "--help"], {"fleetwright.cli.main", "fleetwright.cli.schedule"}),
        (["commands", "--help"], {"fleetwright.cli.main", "fleetwright.cli.commands"}),
    ):
        done = subprocess.run(
            [sys.executable, "-c", script, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        code, _, mods = done.stderr.strip().splitlines()[-1].partition(" ")
        assert code in ("0", "None"), done.stderr
        loaded = set(eval(mods))  # a printed list of module names
        assert "prefect" not in loaded, (args, loaded)
        assert loaded <= allowed | {"fleetwright.cli.output"}, (args, loaded)
        assert "Usage" in done.stdout


def test_help_lists_every_group(cli) -> None:
    from fleetwright.cli.main import COMMANDS

    r = cli("--help")
    assert r.code == 0
    for name, (_, _, short) in COMMANDS.items():
        assert name in r.out and short[:20] in r.out.replace("\n", " ")
