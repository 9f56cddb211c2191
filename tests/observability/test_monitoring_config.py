"""The shipped monitoring files, checked by Prometheus's own `promtool` and by grafanalib."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetwright.observability.config import MONITORING_DIR

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: apt-get install prometheus"
)


@needs_promtool
def test_promtool_checks_the_scrape_config_and_its_rules() -> None:
    config = MONITORING_DIR / "prometheus" / "prometheus.yml"
    out = subprocess.run(
        [PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 1 rule files found" in out.stdout + out.stderr


@needs_promtool
def test_promtool_checks_the_rules_and_their_unit_tests() -> None:
    rules = MONITORING_DIR / "prometheus" / "rules" / "fleetwright.rules.yml"
    out = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 7 rules found" in out.stdout + out.stderr
    tests = Path(__file__).parent / "rules_test.yml"
    out = subprocess.run(
        [PROMTOOL, "test", "rules", str(tests)],
        capture_output=True, text=True, check=False, cwd=rules.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


@needs_promtool
def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a PromQL syntax error does not pass."""
    rules = MONITORING_DIR / "prometheus" / "rules" / "fleetwright.rules.yml"
    broken = tmp_path / "broken.yml"
    broken.write_text(rules.read_text().replace("== 2", "== = 2", 1))
    out = subprocess.run(
        [PROMTOOL, "check", "rules", str(broken)], capture_output=True, text=True, check=False
    )
    assert out.returncode != 0


def test_the_shipped_dashboard_is_what_the_code_generates() -> None:
    from grafanalib.core import Dashboard, TimeSeries

    from fleetwright.observability.dashboard import PANEL_QUERIES, build_dashboard, dashboard_json

    board = build_dashboard()
    assert isinstance(board, Dashboard)
    series = [p for p in board.panels if isinstance(p, TimeSeries)]
    assert len(series) == len(PANEL_QUERIES)
    shipped = MONITORING_DIR / "grafana" / "dashboards" / "fleetwright.json"
    assert shipped.read_text() == dashboard_json(), "run `fleetwright metrics dashboard -o ...`"
    data = json.loads(shipped.read_text())
    assert data["uid"] == "fleetwright-fleet"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in data["panels"]}
    assert {"Session phases p50", "Session phases p95", "Failures by error type"} <= titles
    exprs = [t["expr"] for p in data["panels"] for t in p.get("targets", [])]
    assert any("fleetwright_proxy_quarantined" in e for e in exprs)
    assert any("fleetwright_openai_tokens_total" in e for e in exprs)
    assert any("fleetwright_breaker_state" in e for e in exprs)


def test_grafanalib_refuses_a_malformed_panel() -> None:
    """The library validates what it builds: a wrong field type is refused."""
    from grafanalib.core import TimeSeries

    with pytest.raises(TypeError):
        TimeSeries(title="x", fillOpacity="lots")


def test_grafana_provisioning_points_at_the_dashboard_datasource() -> None:
    import yaml

    from fleetwright.observability.dashboard import DATASOURCE_UID

    prov = MONITORING_DIR / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "fleetwright.yml").read_text())
    assert ds["datasources"][0]["uid"] == DATASOURCE_UID
    assert ds["datasources"][0]["type"] == "prometheus"
    boards = yaml.safe_load((prov / "dashboards" / "fleetwright.yml").read_text())
    assert boards["providers"][0]["type"] == "file"


def test_metrics_config_writes_the_files_and_refuses_to_overwrite(tmp_path: Path) -> None:
    from fleetwright.cli.main import app

    runner = CliRunner()
    out = tmp_path / "monitoring"
    result = runner.invoke(app, ["metrics", "config", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "prometheus" / "prometheus.yml").read_text() == (
        MONITORING_DIR / "prometheus" / "prometheus.yml"
    ).read_text()
    assert (out / "grafana" / "dashboards" / "fleetwright.json").exists()
    again = subprocess.run(
        [str(Path(sys.executable).parent / "fleetwright"), "metrics", "config", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 2
    assert "already exists; pass --force" in again.stderr
    assert "Traceback" not in again.stderr
    forced = runner.invoke(app, ["metrics", "config", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
