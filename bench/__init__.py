"""Fleetwright's benchmarks: each figure measured beside its bare Playwright or plain Prefect
baseline in the same run. Run `python -m bench` (or `--smoke`); see bench/README.md."""

from bench.harness import Bench, Sizes
from bench.report import FIGURE_NAMES
from bench.runner import BENCHMARKS, run_bench

__all__ = ["BENCHMARKS", "FIGURE_NAMES", "Bench", "Sizes", "run_bench"]
