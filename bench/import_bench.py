"""Bulk import: profiles through `fleetwright.registry.import_profiles` (a BrowserProfile block
on the Prefect server and a catalogue row for each), Prefect server and catalogue on Postgres.

The baseline is the floor the Prefect server sets: the same number of bare
`PrefectClient.create_block_document` calls for the same documents, with the same number in
flight, on the same server, timed right after the import (no validation, no catalogue).
"""

from __future__ import annotations

import asyncio
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


async def bare_creates(items: list[tuple[str, Any]], concurrency: int, prefix: str) -> float:
    """Seconds for one `create_block_document` per item (`concurrency` in flight): the floor."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentCreate

    from blocks.profile import BrowserProfile
    from fleetwright.registry.blockstore import BlockStore, _data
    from fleetwright.specs import block_name_for, validate_profile

    # built before the clock starts: the floor is the server's part alone
    blocks = [BrowserProfile.from_spec(validate_profile(d, where=w)) for w, d in items]
    async with get_client() as client:
        type_id, schema_id = await BlockStore(client)._type_ids(BrowserProfile)
        creates = [
            BlockDocumentCreate(
                name=block_name_for(f"{prefix}{b.name}"),
                data=_data(b),
                block_type_id=type_id,
                block_schema_id=schema_id,
            )
            for b in blocks
        ]
        sem = asyncio.Semaphore(concurrency)

        async def one(create: BlockDocumentCreate) -> None:
            async with sem:
                await client.create_block_document(create)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(c) for c in creates))
        return time.perf_counter() - t0


async def run(bench: Bench) -> dict[str, Figure]:
    from fleetwright.embedded.stack import register_blocks
    from fleetwright.registry import import_profiles
    from fleetwright.registry.profiles import BLOCK_CONCURRENCY

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
    floor = await bare_creates(items, BLOCK_CONCURRENCY, "floor-")
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
            "concurrency": BLOCK_CONCURRENCY,
            "baseline": {
                "median": round(floor, 2),
                "min": round(floor, 2),
                "max": round(floor, 2),
                "n": 1,
                "unit": "s",
                "rate_per_s": round(n / floor, 1),
                "name": f"{n} bare PrefectClient.create_block_document calls, "
                f"{BLOCK_CONCURRENCY} in flight, same server (the floor)",
            },
        }
    }
