"""One endpoint per host: what separate processes record is added up, nothing a finished
process counted is lost, and live gauges of dead processes are dropped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_CHILD = textwrap.dedent(
    """
    import os, sys, time
    os.environ["FLEETWRIGHT_HOME"] = sys.argv[1]
    from fleetwright.observability import fleet_metrics
    m = fleet_metrics()
    m.sessions.labels(command="demo", status="ok", error_type="").inc()
    m.sessions.labels(command="demo", status="failed", error_type="Nope").inc()
    m.phase_seconds.labels(phase="launch").observe(0.2)
    m.sessions_active.inc()
    m.breaker_state.labels(service="github", account="bot").set(2)
    if sys.argv[2] == "stay":
        print("ready", flush=True)
        sys.stdin.readline()
    """
)


def _child(home: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def _samples(home: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from fleetwright.observability.serve import host_registry

    registry = host_registry(home / "metrics", catalogue=False)
    out = {}
    for family in registry.collect():
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_processes_add_up_and_dead_ones_leave_no_live_gauge(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for _ in range(2):  # two short-lived processes (flow runs) that have ended
        p = _child(home, "exit")
        p.communicate(timeout=60)
        assert p.returncode == 0
    live = _child(home, "stay")  # one still running
    assert live.stdout is not None and live.stdout.readline().strip() == "ready"
    try:
        got = _samples(home)
    finally:
        live.communicate("\n", timeout=60)
    ok = ("fleetwright_sessions_total", (("command", "demo"), ("error_type", ""), ("status", "ok")))
    assert got[ok] == 3.0
    failed = (
        "fleetwright_sessions_total",
        (("command", "demo"), ("error_type", "Nope"), ("status", "failed")),
    )
    assert got[failed] == 3.0
    assert got[("fleetwright_session_phase_seconds_count", (("phase", "launch"),))] == 3.0
    # only the process still running has a session open
    assert got[("fleetwright_sessions_active", ())] == 1.0
    assert got[("fleetwright_breaker_state", (("account", "bot"), ("service", "github")))] == 2.0
    after = _samples(home)  # now every process has ended
    assert after[ok] == 3.0
    assert after.get(("fleetwright_sessions_active", ()), 0.0) == 0.0


def test_error_types_outside_the_hierarchy_are_one_label() -> None:
    from fleetwright.observability.metrics import error_label

    assert error_label("ProxyError") == "ProxyError"
    assert error_label("AssertionStepError") == "AssertionStepError"
    assert error_label("TimeoutError") == "TimeoutError"
    assert error_label("SomeLibraryInternalThing") == "Other"
    assert error_label(None) == ""


def test_metrics_off_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetwright.observability.metrics import fleet_metrics
    from fleetwright.settings import Settings

    assert fleet_metrics(Settings(home=tmp_path, metrics=False)) is None
    assert not (tmp_path / "metrics").exists()
    on = fleet_metrics(Settings(home=tmp_path, metrics=True))
    assert on is not None
    on.github_requests.labels(status="200").inc()
    assert any(p.name.startswith("counter_") for p in (tmp_path / "metrics").iterdir())


def test_serve_refuses_a_taken_port_in_one_line(tmp_path: Path) -> None:
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run(
            [str(Path(sys.executable).parent / "fleetwright"), "metrics", "serve",
             "--port", str(port), "--timeout", "1"],
            capture_output=True, text=True, check=False, timeout=120,
            env={**os.environ, "FLEETWRIGHT_HOME": str(tmp_path)},
        )  # fmt: skip
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr
    bad = subprocess.run(
        [str(Path(sys.executable).parent / "fleetwright"), "metrics", "serve", "--port", "0"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--port 0 is not a port" in bad.stderr
    assert "Traceback" not in bad.stderr


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.db"))


def test_ended_processes_fold_into_archives_and_a_crashed_fold_is_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that ran many flow runs is read from a few files: the files of processes that
    ended are folded into one archive per kind, keeping every count, also across a fold that
    stopped half way."""
    from fleetwright.observability.serve import HostCollector

    home = tmp_path / "home"
    folder = home / "metrics"
    ok = ("fleetwright_sessions_total", (("command", "demo"), ("error_type", ""), ("status", "ok")))
    breaker = ("fleetwright_breaker_state", (("account", "bot"), ("service", "github")))
    for _ in range(2):
        p = _child(home, "exit")
        p.communicate(timeout=60)
        assert p.returncode == 0
    assert len([f for f in _files(folder) if f.startswith("counter_")]) == 2
    got = _samples(home)
    assert got[ok] == 2.0 and got[breaker] == 2.0
    assert _files(folder) == [
        "counter_archive.db", "gauge_mostrecent_archive.db", "histogram_archive.db",
    ]  # fmt: skip

    # a fold that stopped after switching the archive, before removing what it folded
    for _ in range(2):
        _child(home, "exit").communicate(timeout=60)

    def crash(self: HostCollector) -> None:
        raise OSError("stopped here")

    monkeypatch.setattr(HostCollector, "_finish_journal", crash)
    with pytest.raises(OSError, match="stopped here"):
        HostCollector(folder).tidy()
    monkeypatch.undo()
    assert (folder / "compaction.journal").exists()
    got = _samples(home)  # the next scrape finishes it: nothing counted twice
    assert got[ok] == 4.0
    assert got[("fleetwright_session_phase_seconds_count", (("phase", "launch"),))] == 4.0
    assert not (folder / "compaction.journal").exists()

    # a fold that stopped before switching the archive: its half-written archive is dropped
    _child(home, "exit").communicate(timeout=60)
    dead = next(f for f in _files(folder) if f.startswith("counter_") and "archive" not in f)
    (folder / "counter_archive.db.new").write_bytes(b"\0" * 16)
    (folder / "compaction.journal").write_text(dead + "\n")
    got = _samples(home)
    assert got[ok] == 5.0
    assert not (folder / "counter_archive.db.new").exists()


def test_a_reused_pid_is_not_the_process_that_ended() -> None:
    import os

    from fleetwright.observability.processes import alive, process_id

    me = process_id()
    assert me.startswith(f"{os.getpid()}-") and alive(me)
    assert not alive(f"{os.getpid()}-1")  # same pid, another start: that process ended
    assert not alive("archive")
