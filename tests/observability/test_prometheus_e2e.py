"""Debian's real Prometheus, with the shipped scrape config and rules, scrapes
`fleetwright metrics serve` while a small fleet runs; PromQL answers through its HTTP API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetwright.embedded.prefect_server import free_port
from fleetwright.observability.config import export_monitoring

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.prefect,
    pytest.mark.browser,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: apt-get install prometheus"),
]


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, *, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def endpoint(home: Path, tmp_path: Path) -> Iterator[str]:
    """`fleetwright metrics serve` for the test's home, as an operator starts it."""
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "fleetwright"), "metrics", "serve",
             "--port", str(port)],
            env={**os.environ, "FLEETWRIGHT_HOME": str(home)}, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/metrics", proc, log)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture
def prometheus(endpoint: str, tmp_path: Path) -> Iterator[str]:
    """Prometheus started on the shipped config; the target file lists the endpoint."""
    assert PROMETHEUS is not None
    conf = tmp_path / "monitoring"
    export_monitoring(conf)
    (conf / "prometheus" / "targets" / "fleetwright.yml").write_text(
        f"- targets: ['{endpoint}']\n  labels: {{fleet: test}}\n"
    )
    port = free_port()
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={conf / 'prometheus' / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=out,
        )  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/-/ready", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def _value(prom: str, expr: str) -> float | None:
    result = _query(prom, expr)
    return float(result[0]["value"][1]) if result else None


def _eventually(prom: str, expr: str, want: float, *, seconds: float = 90) -> None:
    """Scrapes come every 15 s (the shipped interval): wait for one after the fleet ran."""
    deadline = time.monotonic() + seconds
    got = None
    while time.monotonic() < deadline:
        got = _value(prom, expr)
        if got == want:
            return
        time.sleep(1)
    raise AssertionError(f"{expr} = {got}, wanted {want}")


def test_prometheus_scrapes_a_small_fleet(small_fleet, prometheus: str, endpoint: str) -> None:
    _eventually(prometheus, 'up{job="fleetwright"}', 1.0)
    state = small_fleet.run()
    assert state.is_failed()
    summary = state.result(raise_on_failure=False)
    assert (summary["ok"], summary["failed"]) == (3, 1), summary

    cmd = 'command="mon-check"'
    _eventually(prometheus, f'sum(fleetwright_sessions_total{{{cmd},status="ok"}})', 3.0)
    _eventually(prometheus, f'sum(fleetwright_sessions_total{{{cmd},status="failed"}})', 1.0)
    failed = _query(prometheus, f'fleetwright_sessions_total{{{cmd},status="failed"}} > 0')
    assert [r["metric"]["error_type"] for r in failed] == ["AssertionStepError"]
    assert all(r["metric"]["fleet"] == "test" for r in failed)  # the target file's labels
    # the quarantined proxy, from the catalogue
    assert _value(prometheus, 'fleetwright_proxy_quarantined{proxy="mon-a",pool="mon"}') == 1.0
    assert _value(prometheus, 'fleetwright_proxy_quarantined{proxy="mon-b",pool="mon"}') == 0.0
    assert _value(prometheus, 'fleetwright_profiles{status="active"}') == 4.0
    # histogram counts: every session launched a browser context and was recorded
    assert _value(prometheus, 'fleetwright_session_phase_seconds_count{phase="launch"}') == 4.0
    assert _value(prometheus, 'fleetwright_session_phase_seconds_count{phase="record"}') == 4.0
    assert _value(prometheus, 'fleetwright_session_phase_seconds_count{phase="save"}') == 3.0
    p95 = _value(
        prometheus,
        # over the whole counts: a rate() needs two scrapes that saw the series change
        "histogram_quantile(0.95, sum by (le) "
        '(fleetwright_session_phase_seconds_bucket{phase="steps"}))',
    )
    assert p95 is not None and p95 > 0
    assert _value(prometheus, 'sum(fleetwright_fleet_run_sessions_total{deployment=""})') == 4.0
    assert _value(prometheus, "sum(fleetwright_sessions_active)") == 0.0

    # the shipped rules are loaded and evaluate; every dashboard query is valid PromQL here
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"]: r for g in rules for r in g["rules"]}
    assert "FleetwrightProxyPoolMostlyQuarantined" in loaded and len(loaded) == 7
    assert all(r["health"] != "err" for r in loaded.values()), loaded
    from fleetwright.observability.dashboard import PANEL_QUERIES

    for _row, _title, _unit, queries in PANEL_QUERIES:
        for expr, _legend in queries:
            _query(prometheus, expr)
