"""The catalogue side of the profile projection: rows whose block is pending, and marking
them projected (registry/projection.py writes the blocks).

Nothing here imports Prefect: the CLI's one-profile path (registry/direct.py) uses it in a
process that never loads Prefect's client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import selectinload

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.catalogue.shape import row_to_spec, spec_json
from fleetwright.specs import ProfileSpec, block_name_for

__all__ = ["BLOCK_CONCURRENCY", "Pending", "ProjectionReport", "mark_projected", "pending_rows"]

# Block writes in flight: the Prefect server is the bottleneck; more requests in flight only
# queue there (measured on 2 cores: 4-6 best, 16 slower). See docs/architecture.md.
BLOCK_CONCURRENCY = 4


@dataclass
class ProjectionReport:
    """Blocks written by a projection, and those left pending (with why)."""

    written: int = 0
    merged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Pending:
    id: int
    name: str
    revision: int
    spec: ProfileSpec
    document_id: str | None
    block_name: str
    projected: dict[str, Any] | None


def pending_rows(url: str | None, ids: Sequence[int] | None, limit: int) -> list[Pending]:
    with session_scope(url) as s:
        stmt = (
            select(Profile)
            .where(Profile.revision > Profile.projected_revision)
            .options(selectinload(Profile.proxy), selectinload(Profile.proxy_pool))
            .order_by(Profile.id)
            .limit(limit)
        )
        if ids is not None:
            stmt = stmt.where(Profile.id.in_(list(ids)))
        return [
            Pending(
                r.id,
                r.name,
                r.revision,
                row_to_spec(r),
                r.block_document_id,
                r.block_name or block_name_for(r.name),
                r.projected,
            )
            for r in s.scalars(stmt)
        ]


def mark_projected(url: str | None, item: Pending, document_id: str) -> bool:
    """Compare-and-set: the row is projected at `item.revision` unless it changed since.

    Either way the row records what its block now holds (the merge base for UI edits). When
    it changed since, the row is left pending (or made pending again): another projection may
    have written and recorded the newer revision before this, older write landed on top of it,
    and a row marked current over a stale block would never be written again.
    """
    values = {
        "projected": spec_json(item.spec),
        "block_document_id": document_id,
        "block_name": item.block_name,
        "updated_at": Profile.updated_at,
    }
    with session_scope(url) as s:
        done = s.execute(
            update(Profile)
            .where(Profile.id == item.id, Profile.revision == item.revision)
            .values(projected_revision=item.revision, **values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount:  # type: ignore[attr-defined]
            return True
        s.execute(
            update(Profile)
            .where(Profile.id == item.id)
            .values(
                projected_revision=case(
                    (Profile.projected_revision > item.revision, item.revision),
                    else_=Profile.projected_revision,
                ),
                **values,
            )
            .execution_options(synchronize_session=False)
        )
        return False
