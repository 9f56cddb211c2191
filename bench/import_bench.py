"""Bulk import and the edit-triggered reconcile, Prefect server and catalogue on Postgres.

`import_10k_profiles_s`: `fleetwright.registry.import_profiles` of 10,000 new profiles until
all are runnable (their catalogue rows committed). `import_10k_blocks_s`: the same import, by
the default path, until every BrowserProfile block exists too (rows first, then blocks through
the Prefect API, 4 in flight). Baseline of both: bare `create_block_document` calls for as
many blocks, what the Prefect API alone allows.

`reconcile_one_edit_ms`: one block edited through the API as the UI does, then the run its
event triggers (`reconcile_edits` with the block's id), at 1,000 and at 10,000 profiles.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any
from uuid import UUID

from bench.harness import Bench
from bench.stats import Figure

__all__ = ["FIGURES", "import_items", "run"]

FIGURES = ("import_10k_profiles_s", "import_10k_blocks_s", "reconcile_one_edit_ms")


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


def _one(seconds: float, **extra: Any) -> Figure:
    return {
        "median": round(seconds, 2),
        "min": round(seconds, 2),
        "max": round(seconds, 2),
        "n": 1,
        "unit": "s",
        **extra,
    }


async def _bare_blocks(n: int) -> float:
    """Seconds for `n` bare create_block_document calls, 4 in flight (the API's floor)."""
    from prefect.client.schemas.actions import BlockDocumentCreate

    from fleetwright.blocks import BrowserProfile
    from fleetwright.registry import open_block_store
    from fleetwright.registry.blockstore import _data
    from fleetwright.specs import validate_profile

    async with open_block_store(connections=4) as bs:
        type_id, schema_id = await bs._type_ids(BrowserProfile)
        sem = asyncio.Semaphore(4)

        async def create(i: int) -> None:
            spec = validate_profile({"name": f"bare-{i:05d}"})
            async with sem:
                await bs.client.create_block_document(
                    BlockDocumentCreate(
                        name=f"bare-{i:05d}",
                        data=_data(BrowserProfile.from_spec(spec)),
                        block_type_id=type_id,
                        block_schema_id=schema_id,
                    )
                )

        t0 = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(n)))
        return time.perf_counter() - t0


async def _edit_ms(bench: Bench, names: list[str], rounds: int) -> list[float]:
    """Milliseconds from a UI-style edit of one block to its row updated, `rounds` times."""
    from prefect.client.schemas.actions import BlockDocumentUpdate
    from sqlalchemy import select

    from fleetwright.catalogue.db import session_scope
    from fleetwright.catalogue.models import Profile
    from fleetwright.registry import open_block_store
    from fleetwright.registry.sync import reconcile_edits

    out = []
    await reconcile_edits(url=bench.catalogue_url)  # a cursor past the import
    for k in range(rounds):
        name = names[(k * 7919) % len(names)]
        with session_scope(bench.catalogue_url) as s:
            doc_id = s.scalar(select(Profile.block_document_id).where(Profile.name == name))
        assert doc_id is not None
        async with open_block_store() as bs:
            doc = await bs.read_document(doc_id)
            assert doc is not None
            await bs.client.update_block_document(
                UUID(doc_id),
                BlockDocumentUpdate(
                    data={**doc.data, "notes": f"edit {k}"}, merge_existing_data=False
                ),
            )
        t0 = time.perf_counter()
        report = await reconcile_edits(doc_id, url=bench.catalogue_url)
        out.append((time.perf_counter() - t0) * 1000)
        if name not in report.rows_updated:
            raise RuntimeError(f"the edit of {name} did not reach its row: {report.as_dict()}")
    return out


async def run(bench: Bench) -> dict[str, Figure]:
    from fleetwright.embedded.stack import register_blocks
    from fleetwright.registry import import_profiles

    bench.prefect()
    await register_blocks()  # as `fleetwright up` does before anything imports
    n = bench.sizes.import_n
    small = max(1, n // 10)
    bare = await _bare_blocks(n)
    baseline = _one(
        bare,
        rate_per_s=round(n / bare, 1),
        name=f"{n} bare create_block_document calls, 4 in flight, same server",
    )

    # 1,000 profiles: the reconcile figure at the small size
    await import_profiles(import_items(small, prefix="s-"), url=bench.catalogue_url)
    at_small = await _edit_ms(bench, [f"s-imp-{i:05d}" for i in range(small)], 9)

    items = import_items(n)
    t0 = time.perf_counter()
    report = await import_profiles(items, url=bench.catalogue_url, blocks=False)
    runnable = time.perf_counter() - t0
    if report.created != n:
        raise RuntimeError(f"import created {report.created} of {n} profiles")
    # the default path writes the blocks right after the rows: time both together
    t1 = time.perf_counter()
    from fleetwright.registry import open_block_store
    from fleetwright.registry.projection import project_profiles

    async with open_block_store(connections=4) as bs:
        projected = await project_profiles(bs, url=bench.catalogue_url)
    blocks = runnable + (time.perf_counter() - t1)
    if projected.written != n:
        raise RuntimeError(f"{projected.written} of {n} blocks written")
    at_large = await _edit_ms(bench, [f"imp-{i:05d}" for i in range(n)], 9)
    total = n + small
    return {
        "import_10k_profiles_s": _one(
            runnable,
            profiles=n,
            rate_per_s=round(n / runnable, 1),
            what=f"import_profiles of {n} new profiles until all are runnable (rows committed, "
            "Postgres)",
            baseline=baseline,
        ),
        "import_10k_blocks_s": _one(
            blocks,
            profiles=n,
            rate_per_s=round(n / blocks, 1),
            what=f"the same import until all {n} BrowserProfile blocks exist too (rows, then "
            "blocks through the Prefect API, 4 in flight)",
            baseline=baseline,
        ),
        "reconcile_one_edit_ms": {
            "median": round(statistics.median(at_large), 1),
            "min": round(min(at_large), 1),
            "max": round(max(at_large), 1),
            "n": len(at_large),
            "unit": "ms",
            "profiles": total,
            "what": f"one block edited through the API, then reconcile_edits(its id) until its "
            f"row is updated, at {total} profiles",
            "baseline": {
                "median": round(statistics.median(at_small), 1),
                "min": round(min(at_small), 1),
                "max": round(max(at_small), 1),
                "n": len(at_small),
                "unit": "ms",
                "name": f"the same at {small} profiles",
            },
        },
    }
