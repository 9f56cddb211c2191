"""Profile specs a session reads, cached in each worker process and checked against the row.

`claim_profile` reads the profile's catalogue row under its lease anyway. Every write of a
profile's spec bumps the row's `revision` in the write's own transaction (fleetwright.registry),
and each entry is checked against the row's revision and every column the spec is made of: a
spec written from any process on any host misses on the next claim after the write commits.
Entries are keyed by catalogue and profile id (tests and tools open several catalogues in one
process, where ids repeat). No pub/sub and no
expiry are needed for correctness; a hit saves the tag query and the spec's validation.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from fleetwright.catalogue.models import Profile
from fleetwright.catalogue.shape import row_to_spec
from fleetwright.specs import ProfileSpec

__all__ = ["SpecCache", "spec_cache"]

_Key = tuple[str, int]


class SpecCache:
    """Least-recently-used ProfileSpecs by (catalogue, profile id), each valid for one stamp
    of its row: the revision and every column the spec is made of (tags, a table of their
    own, change the revision), so a row written without a revision bump misses too, and so
    does another catalogue's row with the same id."""

    def __init__(self, *, size: int = 4096) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._items: OrderedDict[_Key, tuple[tuple[Any, ...], ProfileSpec]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def stamp(row: Profile) -> tuple[Any, ...]:
        values: list[Any] = [row.revision, row.proxy_id, row.proxy_pool_id]
        for name in ProfileSpec.model_fields:
            if name in ("proxy", "proxy_pool", "tags"):
                continue
            value = getattr(row, name)
            if isinstance(value, dict | list):
                value = json.dumps(value, sort_keys=True, default=str)
            values.append(value)
        return tuple(values)

    def spec_for(self, row: Profile, *, catalogue: str) -> ProfileSpec:
        """The spec of `row` (loaded in the caller's transaction on `catalogue`, its
        database's URL): cached when unchanged."""
        key = (catalogue, row.id)
        stamp = self.stamp(row)
        with self._lock:
            item = self._items.get(key)
            if item is not None and item[0] == stamp:
                self._items.move_to_end(key)
                self.hits += 1
                return item[1].model_copy(deep=True)
        spec = row_to_spec(row)
        with self._lock:
            self.misses += 1
            self._items[key] = (stamp, spec.model_copy(deep=True))
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return spec

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0


spec_cache = SpecCache()
"""The process's cache (a worker process serves many sessions)."""
