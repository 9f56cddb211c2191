"""Service accounts: a credentials block plus a catalogue Service row, saved together, and the
account's Prefect rate limit. The catalogue keeps names only; secrets stay in the block."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Service
from fleetwright.errors import (
    AlreadyExistsError,
    CatalogueUnavailableError,
    NotFoundError,
    PrefectUnavailableError,
    ValidationError,
)
from fleetwright.integrations.ratelimit import delete_rate_limit, ensure_rate_limit
from fleetwright.specs import block_name_for, check_name

__all__ = [
    "KINDS",
    "Credentials",
    "ServiceInfo",
    "add_service",
    "list_services",
    "load_credentials",
    "remove_service",
    "service_block_name",
]

logger = logging.getLogger(__name__)

Kind = Literal["github", "openai"]
KINDS: dict[str, type[GitHubCredentials] | type[OpenAICredentials]] = {
    "github": GitHubCredentials,
    "openai": OpenAICredentials,
}
Credentials = GitHubCredentials | OpenAICredentials


@dataclass(frozen=True)
class ServiceInfo:
    """A service account as the catalogue lists it (no secrets)."""

    kind: str
    account: str
    block_name: str
    block_document_id: str | None


def _check_kind(kind: str) -> type[GitHubCredentials] | type[OpenAICredentials]:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValidationError(
            f"unknown service kind {kind!r}; use one of: {', '.join(sorted(KINDS))}"
        ) from None


def service_block_name(kind: str, account: str) -> str:
    """The block-document name holding the credentials of (`kind`, `account`)."""
    return block_name_for(f"{kind}-{account}")


async def _block_exists(block_type: type[Credentials], name: str) -> bool:
    from prefect.exceptions import ObjectNotFound

    try:
        await block_type.aload(name)
    except (ValueError, ObjectNotFound):
        return False
    return True


async def add_service(
    kind: str,
    account: str,
    credentials: Credentials,
    *,
    rate_limit_burst: int | None = None,
    rate_limit_per_second: float | None = None,
    catalogue_url: str | None = None,
) -> ServiceInfo:
    """Save the credentials block and the Service row together, then the account's rate limit.

    The block is saved first; if the row fails the block is deleted again.
    """
    block_type = _check_kind(kind)
    try:
        check_name(account, what="service account")
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if not isinstance(credentials, block_type):
        raise ValidationError(
            f"{kind} services take {block_type.__name__}, not {type(credentials).__name__}"
        )
    if credentials.account != account:
        raise ValidationError(
            f"the credentials say account {credentials.account!r} but the service is {account!r}"
        )
    with session_scope(catalogue_url) as session:
        taken = session.scalar(
            select(Service).where(Service.kind == kind, Service.account == account)
        )
    name = service_block_name(kind, account)
    if taken is not None or await _block_exists(block_type, name):
        raise AlreadyExistsError(
            f"{kind} account {account!r} already exists; remove it first with "
            f"`fleetwright service remove {kind} {account}` or pick another name"
        )
    try:
        block_id = await credentials.asave(name)
    except Exception as exc:
        raise PrefectUnavailableError(
            f"Could not save the {kind} credentials block {name!r} ({type(exc).__name__}); "
            "is the Prefect server running?"
        ) from None
    try:
        with session_scope(catalogue_url) as session:
            session.add(
                Service(
                    kind=kind, account=account, block_name=name, block_document_id=str(block_id)
                )
            )
    except BaseException as exc:
        await block_type.adelete(name)
        if isinstance(exc, IntegrityError):
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "constraint"
            if "unique" in reason.lower():
                raise AlreadyExistsError(f"{kind} account {account!r} already exists") from None
            raise CatalogueUnavailableError(
                f"Could not record {kind} account {account!r} in the catalogue ({reason}); "
                "nothing was saved",
                retryable=False,
            ) from None
        raise
    await ensure_rate_limit(kind, account, burst=rate_limit_burst, per_second=rate_limit_per_second)
    logger.info("Added %s account %s (block %s)", kind, account, name)
    return ServiceInfo(kind, account, name, str(block_id))


async def remove_service(kind: str, account: str, *, catalogue_url: str | None = None) -> None:
    """Delete the Service row, its block and its rate limit."""
    block_type = _check_kind(kind)
    with session_scope(catalogue_url) as session:
        row = session.scalar(
            select(Service).where(Service.kind == kind, Service.account == account)
        )
        if row is None:
            raise NotFoundError(f"no {kind} account {account!r}; see `fleetwright service list`")
        name = row.block_name
        session.delete(row)
    if await _block_exists(block_type, name):
        await block_type.adelete(name)
    await delete_rate_limit(kind, account)


def list_services(
    *, kind: str | None = None, catalogue_url: str | None = None
) -> list[ServiceInfo]:
    """Service accounts in the catalogue, by kind then account."""
    with session_scope(catalogue_url) as session:
        query = select(Service).order_by(Service.kind, Service.account)
        if kind:
            query = query.where(Service.kind == _kind_name(kind))
        return [
            ServiceInfo(s.kind, s.account, s.block_name, s.block_document_id)
            for s in session.scalars(query)
        ]


def _kind_name(kind: str) -> str:
    _check_kind(kind)
    return kind


async def load_credentials(
    kind: str, account: str | None, *, catalogue_url: str | None = None
) -> Any:
    """The credentials block of (`kind`, `account`) named in the catalogue's Service row.

    Without `account`, the only account of that kind.
    """
    block_type = _check_kind(kind)
    rows = list_services(kind=kind, catalogue_url=catalogue_url)
    if account:
        rows = [r for r in rows if r.account == account]
        if not rows:
            raise NotFoundError(
                f"no {kind} account {account!r}; add it with `fleetwright service add {kind}`"
            )
    elif len(rows) != 1:
        raise ValidationError(
            f"the step does not say which {kind} account to use and there are "
            f"{len(rows)}; set `account:` on the step"
        )
    try:
        return cast(Any, await block_type.aload(rows[0].block_name))
    except ValueError:
        raise NotFoundError(
            f"the credentials block {rows[0].block_name!r} of {kind} account "
            f"{rows[0].account!r} is gone; add the service again"
        ) from None
