"""Catalogue selection at fleet scale: 100,000 profiles with tags bulk-inserted into a throwaway
Postgres catalogue (migrated like any other), then 1,000 of them selected by tag the way the
run-command flow selects them (`select_profiles`, ORM rows with their tags)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from sqlalchemy import Table, insert, text

from bench.harness import Bench
from bench.stats import Figure, summary
from fleetwright.catalogue.db import get_engine, session_scope
from fleetwright.catalogue.models import Profile, ProfileTag
from fleetwright.registry.profiles import select_profiles

__all__ = ["FIGURES", "fill_catalogue", "run"]

FIGURES = ("catalogue_select_1000_of_100k_ms",)
_BATCH = 10_000


def fill_catalogue(url: str, total: int, per_tag: int) -> float:
    """Insert `total` profiles, each tagged `fleet` and `group-<k>` (`per_tag` per group);
    returns the seconds the insert took."""
    engine = get_engine(url)
    groups = max(1, total // per_tag)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for start in range(0, total, _BATCH):
            ids = range(start + 1, min(start + _BATCH, total) + 1)
            rows: list[dict[str, Any]] = [
                {"id": i, "name": f"p-{i:06d}", "block_name": f"p-{i:06d}", "fingerprint": {}}
                for i in ids
            ]
            tags: list[dict[str, Any]] = [
                {"profile_id": i, "tag": t} for i in ids for t in ("fleet", f"group-{i % groups}")
            ]
            conn.execute(insert(cast(Table, Profile.__table__)), rows)
            conn.execute(insert(cast(Table, ProfileTag.__table__)), tags)
        conn.execute(text("select setval('profiles_id_seq', :n)"), {"n": total})
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("analyze"))
    return time.perf_counter() - t0


def _select(url: str, tag: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with session_scope(url) as session:
        rows = list(session.scalars(select_profiles(tags=[tag])))
        count = sum(1 for r in rows if r.tags)
    return (time.perf_counter() - t0) * 1000, count


async def run(bench: Bench) -> dict[str, Figure]:
    total, per_tag = bench.sizes.catalogue_total, bench.sizes.catalogue_select
    url = bench.new_database("big")
    insert_s = await asyncio.to_thread(fill_catalogue, url, total, per_tag)
    _select(url, "group-0")  # warm the connection pool and caches
    samples: list[float] = []
    for k in range(bench.sizes.select_repeats):
        ms, count = await asyncio.to_thread(_select, url, f"group-{k + 1}")
        if count != per_tag:
            raise RuntimeError(f"selected {count} profiles by tag, expected {per_tag}")
        samples.append(ms)
    return {
        "catalogue_select_1000_of_100k_ms": summary(
            samples,
            "ms",
            what=f"select_profiles(tags=[one tag]) → {per_tag} ORM rows with tags, "
            f"among {total} profiles, Postgres",
            profiles_total=total,
            profiles_selected=per_tag,
            bulk_insert_s=round(insert_s, 2),
            bulk_insert_rows_per_s=round(total / insert_s),
        )
    }
