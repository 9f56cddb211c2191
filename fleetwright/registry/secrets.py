"""Secret command parameters' values, read from Prefect Secret blocks (encrypted at rest).

Registered as the `fleetwright.secret_loader` entry point: the command runner (which stays
free of Prefect) finds it through the installed package's metadata.
"""

from __future__ import annotations

from typing import Any, cast

from fleetwright.errors import ConfigurationError

__all__ = ["load_secret_block"]


async def load_secret_block(name: str) -> str:
    """The value of Prefect Secret block `name`; ConfigurationError when there is none."""
    from prefect.blocks.system import Secret

    try:
        block = await Secret.aload(name)
    except ValueError:
        raise ConfigurationError(
            f"no Secret block named {name!r}; store it with "
            f"`fleetwright secret set {name}` (the value is read from stdin)"
        ) from None
    value: object = cast("Secret[Any]", block).get()
    if not isinstance(value, str):
        raise ConfigurationError(
            f"Secret block {name!r} holds a {type(value).__name__}, not text; store the "
            f"secret again with `fleetwright secret set {name}`"
        )
    return value
