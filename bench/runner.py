"""Run the selected benchmarks in one shared environment and collect their figures.

A benchmark that fails leaves its figures out and lists them under "missing" with the reason;
no figure is ever filled in by hand.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import Bench, Mode
from bench.machine import git_commit, machine_info
from bench.report import markdown_table, write_results
from bench.stats import Figure

__all__ = ["BENCHMARKS", "Benchmark", "resolve", "run_bench"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Benchmark:
    """A module `bench.<module>` with `FIGURES` and `async run(bench) -> {name: figure}`."""

    name: str
    module: str
    figures: tuple[str, ...]


#: In run order: cheap floors first, the 10k import (which fills the Prefect server) last.
BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("prefect", "prefect_bench", ("prefect_empty_task_ms",)),
    Benchmark(
        "cli",
        "cli_bench",
        ("cli_help_ms", "cli_group_help_ms", "profile_add_ms", "run_now_cli_ms"),
    ),
    Benchmark(
        "sessions",
        "sessions_bench",
        (
            "session_overhead_ratio",
            "session_overhead_trace_ratio",
            "session_start_ms",
            "session_start_idb_ms",
            "session_start_with_page_ms",
            "session_start_with_page_proxy_ms",
            "persistent_launch_ms",
        ),
    ),
    Benchmark("open", "open_bench", ("open_to_cdp_ready_ms", "open_to_cdp_ready_persistent_ms")),
    Benchmark(
        "throughput",
        "throughput_bench",
        (
            "throughput_ratio_c1_0ms",
            "throughput_ratio_c4_0ms",
            "throughput_ratio_c8_0ms",
            "throughput_ratio_c8_150ms",
            "throughput_http_proxy_ratio_c8_150ms",
            "throughput_socks5_proxy_ratio_c8_150ms",
            "cpu_ms_per_session",
            "cpu_per_session_ratio",
        ),
    ),
    Benchmark("leases", "lease_bench", ("lease_prefect_ratio", "lease_catalogue_ratio")),
    Benchmark("metrics", "metrics_bench", ("metrics_overhead_ratio",)),
    Benchmark("memory", "memory_bench", ("memory_mb_per_session",)),
    Benchmark(
        "trigger",
        "trigger_bench",
        ("warm_trigger_to_action_ms", "process_worker_trigger_to_action_ms"),
    ),
    Benchmark("deployment", "deployment_bench", ("throughput_deployment_ratio_c8_150ms",)),
    Benchmark("catalogue", "catalogue_bench", ("catalogue_select_1000_of_100k_ms",)),
    Benchmark(
        "state",
        "state_bench",
        tuple(
            f"state_{kind}_ms_{backend}_{mode}"
            for mode, backends in (
                ("storage", ("local", "database", "object")),
                ("persistent", ("local", "object")),
            )
            for backend in backends
            for kind in ("save", "fetch")
        ),
    ),
    Benchmark("tokens", "token_bench", ("token_mints_per_hour",)),
    Benchmark("hosts", "hosts_bench", ("throughput_2hosts_over_1host",)),
    Benchmark(
        "import",
        "import_bench",
        ("import_10k_profiles_s", "import_10k_blocks_s", "reconcile_one_edit_ms"),
    ),
)

TARGETS: dict[str, str] = {
    "cli_help_ms": "≤ 300",
    "profile_add_ms": "≤ 1000",
    "run_now_cli_ms": "≤ 1500",
    "session_overhead_ratio": "≤ 1.05",
    "session_start_with_page_ms": "≤ 1.10 × bare",
    "session_start_with_page_proxy_ms": "≤ 1.10 × bare",
    "session_start_ms": "≤ 60",
    "persistent_launch_ms": "≤ 500",
    "throughput_ratio_c1_0ms": "≥ 0.90",
    "throughput_ratio_c4_0ms": "≥ 0.90",
    "throughput_ratio_c8_0ms": "≥ 0.90",
    "throughput_ratio_c8_150ms": "≥ 0.92",
    "throughput_http_proxy_ratio_c8_150ms": "≥ 0.92",
    "throughput_socks5_proxy_ratio_c8_150ms": "≥ 0.92",
    "throughput_deployment_ratio_c8_150ms": "≥ 0.92",
    "warm_trigger_to_action_ms": "≤ 300",
    "import_10k_profiles_s": "≤ 15",
    "reconcile_one_edit_ms": "≤ 200",
    "metrics_overhead_ratio": "≥ 0.98",
    "cpu_per_session_ratio": "≤ 1.15",
}


def resolve(only: Sequence[str]) -> list[Benchmark]:
    """The benchmarks named by group or by figure name (all when `only` is empty)."""
    if not only:
        return list(BENCHMARKS)
    chosen: list[Benchmark] = []
    for word in only:
        found = [b for b in BENCHMARKS if word == b.name or word in b.figures]
        if not found:
            known = ", ".join(b.name for b in BENCHMARKS)
            raise ValueError(f"unknown benchmark {word!r}; give a group ({known}) or a figure name")
        chosen.extend(b for b in found if b not in chosen)
    return [b for b in BENCHMARKS if b in chosen]


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


async def _run_one(bench: Bench, item: Benchmark, results: dict[str, Any]) -> None:
    started = time.monotonic()
    print(f"[bench] {item.name} ...", flush=True)
    try:
        module = importlib.import_module(f"bench.{item.module}")
        runner: Callable[[Bench], Awaitable[dict[str, Figure]]] = module.run
        figures = await runner(bench)
    except Exception as exc:
        logger.debug("%s failed:\n%s", item.name, traceback.format_exc())
        for name in item.figures:
            results["missing"][name] = f"the {item.name} benchmark failed: {_reason(exc)}"
        print(f"[bench] {item.name} FAILED: {_reason(exc)}", flush=True)
        return
    for name in item.figures:
        fig = figures.pop(name, None)
        if fig is None:
            reason = bench.notes.get(name, "not produced by its benchmark")
            results["missing"][name] = reason
            continue
        if name in TARGETS:
            fig["target"] = TARGETS[name]
        fig["commit"] = results.get("commit")
        results["figures"][name] = fig
    for fig in figures.values():
        fig["commit"] = results.get("commit")
    results["figures"].update(figures)  # any extra figures a benchmark adds
    results["durations_s"][item.name] = round(time.monotonic() - started, 1)
    print(f"[bench] {item.name} done in {results['durations_s'][item.name]} s", flush=True)


async def _run_all(bench: Bench, chosen: list[Benchmark], results: dict[str, Any]) -> None:
    for item in chosen:
        await _run_one(bench, item, results)


def run_bench(*, mode: Mode, only: Sequence[str] = (), out: Path) -> dict[str, Any]:
    """Run the benchmarks, write latest.json/latest.md into `out`, print the table."""
    chosen = resolve(only)
    bench = Bench.create(mode)
    from fleetwright.settings import get_settings

    settings = get_settings()
    commit = git_commit()
    results: dict[str, Any] = {
        "mode": mode,
        "commit": commit,
        "run_id": bench.run_id,
        "machine": machine_info(),
        "sizes": bench.sizes.__dict__,
        "settings": {
            "browsers_per_worker": settings.browsers_per_worker,
            "contexts_per_browser": settings.contexts_per_browser,
            "lease_ttl_s": settings.lease_ttl.total_seconds(),
            "headless": settings.headless,
        },
        "figures": {},
        "missing": {},
        "notes": {},
        "durations_s": {},
    }
    for item in BENCHMARKS:
        if item not in chosen:
            for name in item.figures:
                results["missing"][name] = f"not run this time (--only {' '.join(only)})"
    try:
        asyncio.run(_run_all(bench, chosen, results))
    finally:
        bench.close()
    results["notes"] = {k: v for k, v in bench.notes.items() if k not in results["missing"]}
    json_path, md_path = write_results(results, out)
    print(markdown_table(results), end="")
    print(f"[bench] wrote {json_path} and {md_path}", flush=True)
    return results
