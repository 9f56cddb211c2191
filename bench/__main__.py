"""`python -m bench [--smoke] [--only NAME ...] [--out bench/results]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from bench.runner import BENCHMARKS, resolve, run_bench

    groups = ", ".join(b.name for b in BENCHMARKS)
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure Fleetwright side by side with bare Playwright and plain Prefect.",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves it runs")
    parser.add_argument(
        "--only", nargs="+", default=[], metavar="NAME", help=f"groups ({groups}) or figure names"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "results",
        help="where latest.json and latest.md go (default: bench/results)",
    )
    args = parser.parse_args(argv)
    try:
        resolve(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    run_bench(mode="smoke" if args.smoke else "full", only=args.only, out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
