"""Bulk import: profiles through `fleetwright.registry.import_profiles` (a BrowserProfile block
on the Prefect server and a catalogue row for each), Prefect server and catalogue on Postgres.

The import writes its blocks in bulk, straight into the Prefect server's database (see
fleetwright/registry/blockdb.py). The baseline is the same import of as many other profiles
with that turned off, so that each block is one `create_block_document` request: what the
Prefect API alone allows, on the same server, right after.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.harness import Bench
from bench.stats import Figure

__all__ = ["FIGURES", "import_items", "run"]

FIGURES = ("import_10k_profiles_s",)


def import_items(n: int, *, prefix: str = "") -> list[tuple[str, Any]]:
    """(where, data) pairs as the CLI reads them from a JSON file."""
    return [
        (
            f"item {i + 1}",
            {
                "name": f"{prefix}imp-{i:05d}",
                "tags": ["imported", f"batch-{i % 20}"],
                "fingerprint": {"locale": "en-GB", "timezone": "Europe/London"},
                "notes": "bench import",
            },
        )
        for i in range(n)
    ]


async def _import(bench: Bench, items: list[tuple[str, Any]], *, bulk: bool) -> float:
    """Seconds for one import_profiles of `items`; `bulk`: blocks written into the server's
    database (as `fleetwright up`'s server or FLEETWRIGHT_PREFECT_DATABASE_URL gives), else
    one API request per block."""
    from fleetwright.registry import import_profiles
    from fleetwright.settings import reset_settings

    env = {
        "FLEETWRIGHT_PREFECT_DATABASE_URL": bench.prefect_database_url if bulk else "",
        # the bench's server was started with a key of its own (PREFECT_SERVER_ENCRYPTION_KEY)
        "FLEETWRIGHT_ENCRYPTION_KEY": bench.prefect_encryption_key,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_settings()
    try:
        t0 = time.perf_counter()
        report = await import_profiles(items, url=bench.catalogue_url)
        seconds = time.perf_counter() - t0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_settings()
    if report.errors or report.created != len(items):
        first = report.errors[0][1] if report.errors else ""
        raise RuntimeError(f"import created {report.created} of {len(items)} profiles {first}")
    # all but the first block (it goes through the API and proves the server's key) in bulk
    if report.bulk_blocks != (len(items) - 1 if bulk else 0):
        raise RuntimeError(f"{report.bulk_blocks} of {len(items)} blocks were written in bulk")
    return seconds


async def run(bench: Bench) -> dict[str, Figure]:
    from fleetwright.embedded.stack import register_blocks
    from fleetwright.registry.profiles import BLOCK_CONCURRENCY

    bench.prefect()
    await register_blocks()  # as `fleetwright up` does before anything imports
    n = bench.sizes.import_n
    seconds = await _import(bench, import_items(n), bulk=True)
    api = await _import(bench, import_items(n, prefix="api-"), bulk=False)
    return {
        "import_10k_profiles_s": {
            "median": round(seconds, 2),
            "min": round(seconds, 2),
            "max": round(seconds, 2),
            "n": 1,
            "unit": "s",
            "profiles": n,
            "rate_per_s": round(n / seconds, 1),
            "what": f"import_profiles of {n} new profiles: blocks written in bulk into the "
            "Prefect server's database (Postgres), catalogue rows (Postgres)",
            "baseline": {
                "median": round(api, 2),
                "min": round(api, 2),
                "max": round(api, 2),
                "n": 1,
                "unit": "s",
                "rate_per_s": round(n / api, 1),
                "name": f"the same import of {n} other profiles through the Prefect API "
                f"(one create_block_document request each, {BLOCK_CONCURRENCY} in flight), "
                "same server, right after",
            },
        }
    }
