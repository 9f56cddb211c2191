"""Write the results: bench/results/latest.json and a markdown table beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["FIGURE_NAMES", "markdown_table", "write_results"]

#: The stable figure names other tools read (issue 7), in table order.
FIGURE_NAMES: tuple[str, ...] = (
    "session_overhead_ratio",
    "session_overhead_trace_ratio",
    "session_start_ms",
    "session_start_idb_ms",
    "session_start_with_page_ms",
    "persistent_launch_ms",
    "open_to_cdp_ready_ms",
    "open_to_cdp_ready_persistent_ms",
    "throughput_ratio_c1_0ms",
    "throughput_ratio_c4_0ms",
    "throughput_ratio_c8_0ms",
    "throughput_ratio_c8_150ms",
    "lease_prefect_ratio",
    "lease_catalogue_ratio",
    "metrics_overhead_ratio",
    "warm_trigger_to_action_ms",
    "process_worker_trigger_to_action_ms",
    "catalogue_select_1000_of_100k_ms",
    "import_10k_profiles_s",
    "import_10k_blocks_s",
    "reconcile_one_edit_ms",
    "state_save_ms_local_storage",
    "state_fetch_ms_local_storage",
    "state_save_ms_database_storage",
    "state_fetch_ms_database_storage",
    "state_save_ms_object_storage",
    "state_fetch_ms_object_storage",
    "state_save_ms_local_persistent",
    "state_fetch_ms_local_persistent",
    "state_save_ms_object_persistent",
    "state_fetch_ms_object_persistent",
    "memory_mb_per_session",
    "throughput_2hosts_over_1host",
    "prefect_empty_task_ms",
    "cli_help_ms",
    "cli_group_help_ms",
    "profile_add_ms",
)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return "" if value is None else str(value)


def _baseline(fig: dict[str, Any]) -> str:
    base = fig.get("baseline")
    if not isinstance(base, dict):
        return ""
    return f"{_num(base.get('median'))} {base.get('unit', '')} ({base.get('name', '')})".strip()


def markdown_table(results: dict[str, Any]) -> str:
    """The figures as a markdown table (median, min–max, n, baseline), then what is missing."""
    figures: dict[str, Any] = results["figures"]
    lines = [
        f"Fleetwright bench ({results['mode']}), {results['machine']['date']}, "
        f"{results['machine']['cpu_count']} × {results['machine']['cpu_model']}",
        "",
        "| figure | median | min – max | unit | n | baseline (median) | target |",
        "|---|---|---|---|---|---|---|",
    ]
    ordered = [n for n in FIGURE_NAMES if n in figures] + sorted(
        n for n in figures if n not in FIGURE_NAMES
    )
    for name in ordered:
        fig = figures[name]
        spread = f"{_num(fig.get('min'))} – {_num(fig.get('max'))}" if "min" in fig else ""
        lines.append(
            f"| {name} | {_num(fig['median'])} | {spread} | {fig.get('unit', '')} | "
            f"{fig.get('n', '')} | {_baseline(fig)} | {fig.get('target', '')} |"
        )
    missing: dict[str, str] = results.get("missing", {})
    if missing:
        lines += ["", "Not measured:", ""]
        lines += [f"- {name}: {reason}" for name, reason in missing.items()]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write latest.json and latest.md into `out` (atomically each); returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / "latest.json", out / "latest.md")
    bodies = (json.dumps(results, indent=2, sort_keys=False) + "\n", markdown_table(results))
    for path, body in zip(paths, bodies, strict=True):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(path)
    return paths
