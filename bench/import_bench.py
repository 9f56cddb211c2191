"""Bulk import: profiles through `fleetwright.registry.import_profiles` (a BrowserProfile block
on the Prefect server and a catalogue row for each), Prefect server and catalogue on Postgres."""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Bench
from bench.stats import Figure

__all__ = ["FIGURES", "import_items", "run"]

FIGURES = ("import_10k_profiles_s",)


def import_items(n: int) -> list[tuple[str, Any]]:
    """(where, data) pairs as the CLI reads them from a JSON file."""
    return [
        (
            f"item {i + 1}",
            {
                "name": f"imp-{i:05d}",
                "tags": ["imported", f"batch-{i % 20}"],
                "fingerprint": {"locale": "en-GB", "timezone": "Europe/London"},
                "notes": "bench import",
            },
        )
        for i in range(n)
    ]


async def run(bench: Bench) -> dict[str, Figure]:
    from fleetwright.embedded.stack import register_blocks
    from fleetwright.registry import import_profiles

    bench.prefect()
    await register_blocks()  # as `fleetwright up` does before anything imports
    n = bench.sizes.import_n
    items = import_items(n)
    t0 = time.perf_counter()
    report = await import_profiles(items, url=bench.catalogue_url)
    seconds = time.perf_counter() - t0
    if report.errors or report.created != n:
        first = report.errors[0][1] if report.errors else ""
        raise RuntimeError(f"import created {report.created} of {n} profiles {first}".strip())
    return {
        "import_10k_profiles_s": {
            "median": round(seconds, 2),
            "min": round(seconds, 2),
            "max": round(seconds, 2),
            "n": 1,
            "unit": "s",
            "profiles": n,
            "rate_per_s": round(n / seconds, 1),
            "what": f"import_profiles of {n} new profiles: blocks on the Prefect server "
            "(Postgres) and catalogue rows (Postgres)",
        }
    }
