"""Profile specs a session reads, cached in each worker process and checked against the row.

`claim_profile` reads the profile's catalogue row under its lease anyway. Every write of a
profile's spec bumps the row's `revision` in the write's own transaction (fleetwright.registry),
so the cache is keyed by the row's revision, status and proxy references: a spec written from
any process on any host misses on the next claim after the write commits. No pub/sub and no
expiry are needed for correctness; a hit saves the tag query and the spec's validation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from fleetwright.catalogue.models import Profile
from fleetwright.catalogue.shape import row_to_spec
from fleetwright.specs import ProfileSpec

__all__ = ["SpecCache", "spec_cache"]

_Stamp = tuple[int, str, int | None, int | None]


class SpecCache:
    """Least-recently-used ProfileSpecs by profile id, each valid for one row stamp."""

    def __init__(self, *, size: int = 4096) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._items: OrderedDict[int, tuple[_Stamp, ProfileSpec]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def stamp(row: Profile) -> _Stamp:
        return (row.revision, row.status, row.proxy_id, row.proxy_pool_id)

    def spec_for(self, row: Profile) -> ProfileSpec:
        """The spec of `row` (loaded in the caller's transaction): cached when unchanged."""
        stamp = self.stamp(row)
        with self._lock:
            item = self._items.get(row.id)
            if item is not None and item[0] == stamp:
                self._items.move_to_end(row.id)
                self.hits += 1
                return item[1].model_copy(deep=True)
        spec = row_to_spec(row)
        with self._lock:
            self.misses += 1
            self._items[row.id] = (stamp, spec.model_copy(deep=True))
            self._items.move_to_end(row.id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return spec

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0


spec_cache = SpecCache()
"""The process's cache (a worker process serves many sessions)."""
