"""Secret command parameters: read from Prefect Secret blocks inside the session.

A `secret` parameter carries the name of a Secret block (encrypted at rest by the Prefect
server), so argv, flow-run parameters, the resume path and result storage only ever hold that
name. The name may be a template over the profile (`site-{{ profile.name }}`): each profile
logs in with its own account. The value is read here, put in the template scope, and
remembered so the runner can scrub it from outputs, errors and traces.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fleetwright.commands.models import CommandSpec
from fleetwright.commands.templating import render
from fleetwright.errors import ConfigurationError, FleetwrightError, TemplateError
from fleetwright.listeners import provider
from fleetwright.specs import block_name_for

__all__ = ["SECRET_LOADERS", "SecretLoader", "default_loader", "resolve_secret_params"]

logger = logging.getLogger(__name__)

#: Reads one Secret block's value by name.
SecretLoader = Callable[[str], Awaitable[str]]


#: Entry point group naming the default loader (Fleetwright's own reads Prefect Secret blocks,
#: fleetwright.registry.secrets:load_secret_block); this module stays free of Prefect.
SECRET_LOADERS = "fleetwright.secret_loader"


def default_loader() -> SecretLoader:
    """The installed secret loader (Fleetwright's reads Prefect Secret blocks)."""
    loader: SecretLoader = provider(SECRET_LOADERS)
    return loader


async def resolve_secret_params(
    spec: CommandSpec,
    params: Mapping[str, Any],
    *,
    profile: Mapping[str, Any],
    loader: SecretLoader | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """`params` with each secret parameter's block name replaced by the block's value, and
    the values read (to scrub)."""
    loader = loader or default_loader()
    resolved = dict(params)
    values: list[str] = []
    for name, param in spec.params.items():
        if param.type != "secret" or not isinstance(params.get(name), str):
            continue
        raw = params[name]
        try:
            block = render(raw, {"profile": dict(profile)})
        except TemplateError as exc:
            raise ConfigurationError(
                f"command {spec.ref}: secret parameter {name!r}: {exc.message}"
            ) from None
        if block != raw:  # a per-profile name: profile names become valid block names
            block = block_name_for(block)
        try:
            value = await loader(block)
        except FleetwrightError as exc:
            raise ConfigurationError(
                f"command {spec.ref}: secret parameter {name!r}: {exc.message}"
            ) from None
        resolved[name] = value
        values.append(value)
    return resolved, values
