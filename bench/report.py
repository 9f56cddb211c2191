"""Write the results: bench/results/latest.json and a markdown table beside it."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["FIGURE_NAMES", "markdown_table", "verdict", "write_results"]

#: The stable figure names other tools read (issue 7), in table order.
FIGURE_NAMES: tuple[str, ...] = (
    "session_overhead_ratio",
    "session_overhead_trace_ratio",
    "session_start_ms",
    "session_start_idb_ms",
    "session_start_with_page_ms",
    "session_start_with_page_proxy_ms",
    "persistent_launch_ms",
    "open_to_cdp_ready_ms",
    "open_to_cdp_ready_persistent_ms",
    "throughput_ratio_c1_0ms",
    "throughput_ratio_c4_0ms",
    "throughput_ratio_c8_0ms",
    "throughput_ratio_c8_150ms",
    "throughput_http_proxy_ratio_c8_150ms",
    "throughput_socks5_proxy_ratio_c8_150ms",
    "throughput_deployment_ratio_c8_150ms",
    "cpu_ms_per_session",
    "cpu_per_session_ratio",
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
    "token_mints_per_hour",
    "throughput_2hosts_over_1host",
    "prefect_empty_task_ms",
    "cli_help_ms",
    "cli_group_help_ms",
    "profile_add_ms",
    "run_now_cli_ms",
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


_TARGET = re.compile(r"^\s*(≤|≥)\s*([0-9.]+)\s*(× bare)?")


def verdict(fig: dict[str, Any]) -> str:
    """ "pass", "fail", "unclear" (the rounds' min–max straddles the target) or "" (no target).

    Targets read "≤ N", "≥ N" (the median against N; a ratio also with its min–max) or
    "≤ N × bare" (the median against N times the baseline's median)."""
    match = _TARGET.match(str(fig.get("target") or ""))
    median = fig.get("median")
    if not match or not isinstance(median, int | float):
        return ""
    sign, bound, relative = match.group(1), float(match.group(2)), match.group(3)
    if relative:
        base = (fig.get("baseline") or {}).get("median")
        if not isinstance(base, int | float) or base <= 0:
            return ""
        median = median / base
    ok = median <= bound if sign == "≤" else median >= bound
    lo, hi = fig.get("min", median), fig.get("max", median)
    if "rounds" in fig and not relative and lo < bound < hi:  # can the A/B rounds tell?
        return f"{'pass' if ok else 'fail'} (rounds straddle)"
    return "pass" if ok else "fail"


def markdown_table(results: dict[str, Any], *, head: str | None = None) -> str:
    """The figures as a markdown table (median, min–max, n, baseline, target, pass/fail), then
    what is missing. A figure measured at another commit than `head` (default: the run's own)
    is marked stale."""
    figures: dict[str, Any] = results["figures"]
    machine = results["machine"]
    commit = results.get("commit") or "unknown"
    head = head or commit
    load = machine.get("load_avg_at_start")
    lines = [
        f"Fleetwright bench ({results['mode']}), {machine['date']}, commit {commit}, "
        f"{machine['cpu_count']} × {machine['cpu_model']}, load average before the run "
        f"{' / '.join(str(x) for x in load) if load else 'unknown'} (1 / 5 / 15 min)",
        "",
        "| figure | median | min – max | unit | n | baseline (median) | target | pass/fail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ordered = [n for n in FIGURE_NAMES if n in figures] + sorted(
        n for n in figures if n not in FIGURE_NAMES
    )
    for name in ordered:
        fig = figures[name]
        spread = f"{_num(fig.get('min'))} – {_num(fig.get('max'))}" if "min" in fig else ""
        measured_at = fig.get("commit") or commit
        stale = f" (stale: measured at {measured_at})" if measured_at != head else ""
        lines.append(
            f"| {name}{stale} | {_num(fig['median'])} | {spread} | {fig.get('unit', '')} | "
            f"{fig.get('n', '')} | {_baseline(fig)} | {fig.get('target', '')} | "
            f"{verdict(fig)} |"
        )
    missing: dict[str, str] = results.get("missing", {})
    if missing:
        lines += ["", "Not measured:", ""]
        lines += [f"- {name}: {reason}" for name, reason in missing.items()]
    if results.get("sizes"):
        sizes = ", ".join(f"{k} {v}" for k, v in results["sizes"].items())
        lines += ["", f"Sizes: {sizes}."]
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


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report RESULTS.json`: print its table, figures from another commit than
    the checked-out one marked stale."""
    from bench.machine import git_commit

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.report RESULTS.json", file=sys.stderr)
        return 2
    results = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    sys.stdout.write(markdown_table(results, head=git_commit()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
