"""`fleetwright watch --json` over Prefect's event stream during a real fleet run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.browser]

FLEETWRIGHT = str(Path(sys.executable).parent / "fleetwright")


class Reader:
    """Lines of a child's stream with the time each arrived."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in iter(stream.readline, ""):
            self.lines.append((time.time(), line.rstrip("\n")))

    def wait_for(self, pred: Any, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if pred(self.lines):
                return True
            time.sleep(0.1)
        return pred(self.lines)


def test_watch_json_follows_every_session_live(small_fleet, home: Path) -> None:
    proc = subprocess.Popen(
        [FLEETWRIGHT, "watch", "--all", "--json", "--timeout", "600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FLEETWRIGHT_HOME": str(home)},
    )  # fmt: skip
    out, err = Reader(proc.stdout), Reader(proc.stderr)
    try:
        assert err.wait_for(lambda ls: any("watching every fleet run" in t for _, t in ls), 120), (
            err.lines
        )
        state = small_fleet.run()
        ran_until = time.time()
        flow_run_id = str(state.state_details.flow_run_id)
        names = set(small_fleet.profiles)

        def ours(lines: list[tuple[float, str]]) -> list[tuple[float, dict[str, Any]]]:
            events = [(t, json.loads(text)) for t, text in lines]
            return [(t, e) for t, e in events if e.get("flow_run_id") == flow_run_id]

        def complete(lines: list[tuple[float, str]]) -> bool:
            done = {e["profile"] for _, e in ours(lines) if e["event"].endswith("session.finished")}
            return done >= names

        assert out.wait_for(complete, 60), out.lines
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    events = ours(out.lines)
    latencies = []
    for name in names:
        mine = [(t, e) for t, e in events if e.get("profile") == name
                and e["event"].startswith("fleetwright.session.")]  # fmt: skip
        kinds = [e["event"] for _, e in mine]
        assert kinds == ["fleetwright.session.started", "fleetwright.session.finished"], kinds
        finished = mine[1][1]
        assert finished["command"] == "mon-check" and finished["run"] == flow_run_id
        assert finished["outcome"] == ("failed" if name == small_fleet.bad else "ok")
        assert finished["duration_ms"] > 0
        phases = {"lease_wait", "launch", "record"} | (
            {"steps", "save"} if name != small_fleet.bad else set()
        )
        assert set(finished["phases_ms"]) >= phases, finished
        for t, e in mine:
            latencies.append(t - datetime.fromisoformat(e["occurred"]).timestamp())
    bad = next(e for _, e in events if e.get("profile") == small_fleet.bad
               and e["event"] == "fleetwright.session.finished")  # fmt: skip
    assert bad["error_type"] == "AssertionStepError"
    mover_started = next(e for _, e in events if e.get("profile") == small_fleet.mover
                         and e["event"] == "fleetwright.session.started")  # fmt: skip
    assert mover_started["proxy"] == "mon-b"
    assert any(e["event"] == "fleetwright.profile.failover" and e["to"] == "mon-b"
               for _, e in events)  # fmt: skip
    assert any(e["event"] == "fleetwright.run.started" and e["todo"] == 4 for _, e in events)
    # live, not a replay at the end: the first sessions' events came while the run went on
    first_finish = min(t for t, e in events if e["event"] == "fleetwright.session.finished")
    assert first_finish < ran_until
    print(f"watch delivery latency: max {max(latencies):.3f} s over {len(latencies)} events")


def test_watch_refuses_bad_input_in_one_line(prefect_api: str) -> None:
    for args, message in (
        (["watch"], "give a fleet run's id or --all"),
        (["watch", "abc", "--all"], "give a fleet run's id or --all"),
        (["watch", "not-a-uuid"], "'not-a-uuid' is not a flow run id"),
        (["watch", "--all", "--timeout", "-1"], "--timeout -1 is negative"),
        (["watch", "00000000-0000-4000-8000-000000000000"], "no flow run 00000000-"),
    ):
        out = subprocess.run([FLEETWRIGHT, *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
