"""The benchmarks run end to end in smoke mode and write well-formed results (never a time
threshold: the figures themselves are the bench's business, not the test's)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.report import FIGURE_NAMES
from bench.runner import BENCHMARKS, resolve
from bench.stats import ab_ratio, percentile, summary

ROOT = Path(__file__).resolve().parents[2]
RATIOS = [n for n in FIGURE_NAMES if "ratio" in n]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_every_figure_name_belongs_to_one_benchmark() -> None:
    owned = [name for b in BENCHMARKS for name in b.figures]
    assert sorted(owned) == sorted(FIGURE_NAMES)
    assert [b.name for b in resolve(["throughput_ratio_c8_150ms", "sessions"])] == [
        "sessions",
        "throughput",
    ]
    with pytest.raises(ValueError, match="unknown benchmark 'nope'"):
        resolve(["nope"])


def test_stats_ratios_and_percentiles() -> None:
    fig = ab_ratio([2.0, 3.0, 4.0], [2.0, 2.0, 2.0], unit="ratio", a_name="a", b_name="b",
                   a_unit="ms")  # fmt: skip
    assert (fig["min"], fig["median"], fig["max"]) == (1.0, 1.5, 2.0)
    assert fig["rounds"] == [1.0, 1.5, 2.0] and fig["baseline"]["median"] == 2.0
    assert percentile([1, 2, 3, 4, 5], 50) == 3 and percentile([1, 2], 95) == pytest.approx(1.95)
    assert summary([5.0], "ms")["p95"] == 5.0
    with pytest.raises(ValueError):
        ab_ratio([1.0], [], unit="ratio", a_name="a", b_name="b", a_unit="ms")


def test_the_table_says_pass_fail_and_marks_figures_of_another_commit_stale() -> None:
    from bench.report import markdown_table, verdict

    assert verdict({"median": 250.0, "target": "≤ 300"}) == "pass"
    assert verdict({"median": 0.91, "min": 0.9, "max": 0.95, "target": "≥ 0.92"}) == "fail"
    straddling = {"median": 0.93, "min": 0.85, "max": 1.0, "rounds": [0.85, 0.93, 1.0],
                  "target": "≥ 0.92"}  # fmt: skip
    assert verdict(straddling) == "pass (rounds straddle)"
    relative = {"median": 120.0, "baseline": {"median": 100.0}, "target": "≤ 1.10 × bare"}
    assert verdict(relative) == "fail"
    assert verdict({"median": 5.0}) == "" and verdict({"median": 1.0, "target": "—"}) == ""
    results = {
        "mode": "full", "commit": "abc1234", "sizes": {"cli_n": 10},
        "machine": {"date": "d", "cpu_count": 2, "cpu_model": "x",
                    "load_avg_at_start": [0.5, 0.4, 0.3]},
        "figures": {
            "cli_help_ms": {"median": 250.0, "unit": "ms", "target": "≤ 300",
                            "commit": "abc1234"},
            "profile_add_ms": {"median": 2000.0, "unit": "ms", "target": "≤ 1000",
                               "commit": "0ld0001"},
        },
    }  # fmt: skip
    table = markdown_table(results)
    assert "commit abc1234" in table and "0.5 / 0.4 / 0.3" in table and "cli_n 10" in table
    assert "| cli_help_ms | 250.0 |" in table and table.count("| pass |") == 1
    assert "profile_add_ms (stale: measured at 0ld0001)" in table and "| fail |" in table
    assert "cli_help_ms (stale: measured at abc1234)" in markdown_table(results, head="new9999")


def test_bad_arguments_are_one_line_errors() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "nope"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "unknown benchmark 'nope'" in proc.stderr


@pytest.mark.postgres
def _bench_databases() -> set[str]:
    from sqlalchemy import create_engine, text

    from bench.harness import PG_ADMIN_URL

    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("select datname from pg_database where datname like 'fw_bench_%'")
            ).all()
    finally:
        engine.dispose()
    return {r[0] for r in rows}


@pytest.mark.browser
@pytest.mark.prefect
@pytest.mark.slow
def test_smoke_run_writes_well_formed_results(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLEETWRIGHT_"))}
    env["FLEETWRIGHT_CHROMIUM_EXECUTABLE"] = os.environ.get("FLEETWRIGHT_CHROMIUM_EXECUTABLE", "")
    if not env["FLEETWRIGHT_CHROMIUM_EXECUTABLE"]:
        env.pop("FLEETWRIGHT_CHROMIUM_EXECUTABLE")
    for key in ("FLEETWRIGHT_TEST_DATABASE_URL", "FLEETWRIGHT_BENCH_DATABASE_URL"):
        if key in os.environ:
            env[key] = os.environ[key]
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "latest.json").read_text())
    assert results["mode"] == "smoke"
    assert results["commit"] and all(
        f["commit"] == results["commit"] for f in results["figures"].values()
    )
    assert results["sizes"]["cli_n"] >= 1 and len(results["machine"]["load_avg_at_start"]) == 3
    machine = results["machine"]
    for key in ("cpu_count", "cpu_model", "memory_mb", "python", "playwright", "prefect",
                "chromium", "date"):  # fmt: skip
        assert machine[key], key
    figures, missing = results["figures"], results["missing"]
    assert set(figures) | set(missing) >= set(FIGURE_NAMES)
    assert not missing, missing  # every benchmark runs here: a missing figure is a failure
    for name in FIGURE_NAMES:
        fig = figures[name]
        assert _number(fig["median"]) and fig["unit"], name
        if "min" in fig:
            assert fig["min"] <= fig["median"] <= fig["max"], name
        base = fig.get("baseline")
        if base is not None:
            assert _number(base["median"]) and base["name"], name
    for name in RATIOS:
        fig = figures[name]
        assert fig["median"] > 0 and fig["n"] == len(fig["rounds"]) >= 1, name
    proxied_start = figures["session_start_with_page_proxy_ms"]
    assert (
        proxied_start["fingerprint"]["locale"] == "de-DE"
        and "proxy=" in (proxied_start["baseline"]["name"])
    )
    for name in ("throughput_http_proxy_ratio_c8_150ms", "throughput_socks5_proxy_ratio_c8_150ms"):
        assert "IndexedDB" in figures[name]["storage_state"], name
    table = (out / "latest.md").read_text()
    assert all(f"| {name} |" in table for name in FIGURE_NAMES)
    assert "| session_overhead_ratio |" in proc.stdout  # the table is printed too
    # nothing left behind: the throwaway databases this run made are gone
    # (another bench running on the machine meanwhile has databases of its own run id)
    assert results["run_id"] and not {
        d for d in _bench_databases() if d.startswith(f"fw_bench_{results['run_id']}_")
    }
