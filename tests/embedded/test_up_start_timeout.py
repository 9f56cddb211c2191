"""`fleetwright up` waits `FLEETWRIGHT_PREFECT_START_TIMEOUT` for its Prefect server (a first
start migrates the database; on 2 busy cores that took over 90 s), and says so in one line when
the server does not answer in time, leaving no server behind."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
import pytest

from fleetwright.embedded.prefect_server import free_port
from fleetwright.testing.up import console_script, user_env

pytestmark = [pytest.mark.slow]


def _servers_of(home: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.environ().get("FLEETWRIGHT_HOME") == str(home) and "server" in " ".join(
                proc.info["cmdline"] or []
            ):
                found.append(proc.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    return found


def test_a_server_slower_than_the_start_timeout_is_one_line_and_stopped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = user_env(home, free_port(), FLEETWRIGHT_PREFECT_START_TIMEOUT="1")
    done = subprocess.run(
        [*console_script(), "up", "--no-demo", "--no-warm-worker"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "The local Prefect server did not answer within 1s" in out, out
    assert "Traceback" not in out
    deadline = time.monotonic() + 15
    while _servers_of(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _servers_of(home) == []


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (
            "FLEETWRIGHT_PREFECT_START_TIMEOUT",
            "soon",
            "a duration: seconds as ISO 8601, e.g. PT90S",
        ),
        ("FLEETWRIGHT_PREFECT_PORT", "abc", "valid integer"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    done = subprocess.run(
        [*console_script(), "status"],
        env=user_env(tmp_path / "home", **{name: value}),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"error: setting {name}={value!r} is not valid") and says in lines[0]
