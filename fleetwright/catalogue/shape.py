"""A profile's one shape: ProfileSpec, and the catalogue row derived from it field by field.

Every ProfileSpec field is a row column of the same name, except three: `tags` (rows of
profile_tags), and the proxy assignment `proxy` / `proxy_pool` (names here, foreign keys on
the row). The proxy a pool draw or a failover chose (`bound_proxy_id`) is not part of the
spec: it is the binding, kept apart from the assignment and cleared when the assignment
changes. The BrowserProfile block derives its fields from ProfileSpec too (blocks/profile.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from fleetwright.catalogue.models import Profile, ProfileTag, Proxy, ProxyPool
from fleetwright.errors import NotFoundError
from fleetwright.specs import ProfileSpec

__all__ = [
    "REFERENCES",
    "apply_spec",
    "check_refs",
    "lookup_refs",
    "merge_edit",
    "row_to_spec",
    "select_profiles",
    "spec_columns",
    "spec_json",
]

REFERENCES = ("proxy", "proxy_pool")


def spec_json(spec: ProfileSpec) -> dict[str, Any]:
    """The spec as plain JSON, the form kept as a projection's merge base."""
    return spec.model_dump(mode="json")


def row_to_spec(row: Profile) -> ProfileSpec:
    """The ProfileSpec a catalogue row describes."""
    data: dict[str, Any] = {}
    for name in ProfileSpec.model_fields:
        if name == "proxy":
            data[name] = row.proxy.name if row.proxy is not None else None
        elif name == "proxy_pool":
            data[name] = row.proxy_pool.name if row.proxy_pool is not None else None
        elif name == "tags":
            data[name] = row.tags
        else:
            data[name] = getattr(row, name)
    return ProfileSpec.model_validate(data)


def apply_spec(
    row: Profile, spec: ProfileSpec, proxies: dict[str, int], pools: dict[str, int]
) -> bool:
    """Copy a validated spec onto a row (references resolved to ids); True if it changed.

    A changed assignment drops the binding: the next session draws or takes the new one.
    """
    changed = False
    for name in ProfileSpec.model_fields:
        value = getattr(spec, name)
        if name in REFERENCES:
            column = "proxy_id" if name == "proxy" else "proxy_pool_id"
            ids = proxies if name == "proxy" else pools
            new = ids[value] if value else None
            if getattr(row, column) != new:
                setattr(row, column, new)
                row.bound_proxy_id = None
                changed = True
        elif name == "tags":
            if row.tags != list(value):
                row.set_tags(list(value))
                changed = True
        else:
            if isinstance(value, BaseModel):
                value = value.model_dump(mode="json")
            if getattr(row, name) != value:
                setattr(row, name, value)
                changed = True
    return changed


def spec_columns(
    spec: ProfileSpec, proxies: dict[str, int], pools: dict[str, int]
) -> dict[str, Any]:
    """A new row's column values for a spec (references resolved to ids; tags apart), for
    bulk inserts that skip the ORM's unit of work."""
    out: dict[str, Any] = {}
    for name in ProfileSpec.model_fields:
        value = getattr(spec, name)
        if name == "proxy":
            out["proxy_id"] = proxies[value] if value else None
        elif name == "proxy_pool":
            out["proxy_pool_id"] = pools[value] if value else None
        elif name != "tags":
            out[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return out


def lookup_refs(
    session: Session, specs: Iterable[ProfileSpec]
) -> tuple[dict[str, int], dict[str, int]]:
    """Proxy and pool ids by name, for the references the specs make."""
    specs = list(specs)
    proxy_names = {s.proxy for s in specs if s.proxy}
    pool_names = {s.proxy_pool for s in specs if s.proxy_pool}
    proxies: dict[str, int] = {}
    pools: dict[str, int] = {}
    if proxy_names:
        proxies = dict(
            session.execute(select(Proxy.name, Proxy.id).where(Proxy.name.in_(proxy_names)))
            .tuples()
            .all()
        )
    if pool_names:
        pools = dict(
            session.execute(
                select(ProxyPool.name, ProxyPool.id).where(ProxyPool.name.in_(pool_names))
            )
            .tuples()
            .all()
        )
    return proxies, pools


def check_refs(spec: ProfileSpec, proxies: dict[str, int], pools: dict[str, int]) -> None:
    if spec.proxy and spec.proxy not in proxies:
        raise NotFoundError(
            f"profile {spec.name!r}: unknown proxy {spec.proxy!r}; see `fleetwright proxy list`"
        )
    if spec.proxy_pool and spec.proxy_pool not in pools:
        raise NotFoundError(
            f"profile {spec.name!r}: unknown proxy pool {spec.proxy_pool!r}; "
            "pools are created by `fleetwright proxy add --pool NAME`"
        )


def merge_edit(
    base: dict[str, Any], edited: dict[str, Any], current: dict[str, Any]
) -> dict[str, Any]:
    """Three-way merge: the fields `edited` changed against `base`, applied to `current`.

    Nested objects (the fingerprint) merge field by field, so a UI edit of the timezone and
    a CLI edit of the locale both survive. Setting a proxy clears the pool and the reverse:
    the assignment is one thing.
    """
    out = dict(current)
    for key, value in edited.items():
        old = base.get(key)
        if value == old:
            continue
        if isinstance(value, dict) and isinstance(old, dict) and isinstance(out.get(key), dict):
            out[key] = merge_edit(old, value, out[key])
        else:
            out[key] = value
            if key == "proxy" and value:
                out["proxy_pool"] = None
            elif key == "proxy_pool" and value:
                out["proxy"] = None
    return out


def select_profiles(
    *,
    names: Sequence[str] = (),
    tags: Sequence[str] = (),
    status: str | None = "active",
) -> Select[Profile]:
    """Profiles named in `names` or carrying any of `tags` (all when both are empty)."""
    stmt = select(Profile)
    if names or tags:
        cond = []
        if names:
            cond.append(Profile.name.in_(list(names)))
        if tags:
            cond.append(
                Profile.id.in_(select(ProfileTag.profile_id).where(ProfileTag.tag.in_(list(tags))))
            )
        stmt = stmt.where(or_(*cond))
    if status:
        stmt = stmt.where(Profile.status == status)
    return stmt
