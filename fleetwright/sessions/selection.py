"""Which profiles a fleet run covers, and which of them already finished in this run."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, ProfileTag, Run
from fleetwright.catalogue.shape import select_profiles
from fleetwright.errors import NotFoundError, ValidationError

__all__ = ["finished_profiles", "resolve_selection"]


def resolve_selection(
    *,
    names: Sequence[str] = (),
    tags: Sequence[str] = (),
    all_active: bool = False,
    url: str | None = None,
) -> list[str]:
    """Active profile names selected by name and/or tag (or all active ones).

    Unknown names or tags and an empty selection are errors, raised before anything runs.
    """
    if not (names or tags or all_active):
        raise ValidationError("select profiles: give profile names, --tag, or --all")
    with session_scope(url) as s:
        if names:
            rows = dict(
                s.execute(select(Profile.name, Profile.status).where(Profile.name.in_(list(names))))
                .tuples()
                .all()
            )
            missing = [n for n in names if n not in rows]
            if missing:
                raise NotFoundError(
                    f"unknown profile {missing[0]!r}"
                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                    + "; see `fleetwright profile list`"
                )
        if tags:
            known = set(
                s.scalars(select(ProfileTag.tag).where(ProfileTag.tag.in_(list(tags))).distinct())
            )
            missing = [t for t in tags if t not in known]
            if missing:
                raise NotFoundError(f"no profile has tag {missing[0]!r}")
        stmt = select_profiles(names=() if all_active else names,
                               tags=() if all_active else tags, status="active")  # fmt: skip
        selected = list(s.scalars(stmt.with_only_columns(Profile.name).order_by(Profile.name)))
    if not selected:
        raise ValidationError(
            "the selection is empty: every selected profile is archived; "
            "check `fleetwright profile list --status active`"
        )
    return selected


def finished_profiles(
    flow_run_id: str, command: str, version: str, *, url: str | None = None
) -> set[str]:
    """Profiles whose session already succeeded in this fleet run (a rerun skips them)."""
    with session_scope(url) as s:
        return set(
            s.scalars(
                select(Run.profile_name).where(
                    Run.flow_run_id == flow_run_id,
                    Run.command_name == command,
                    Run.command_version == version,
                    Run.status == "ok",
                )
            )
        )
