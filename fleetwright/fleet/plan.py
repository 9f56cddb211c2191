"""Check a fleet run before anything is submitted: command, parameters and selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetwright.commands import CommandSpec, get_command, validate_params
from fleetwright.errors import ValidationError
from fleetwright.sessions.selection import resolve_selection

__all__ = ["FleetPlan", "parse_params", "plan_run"]


@dataclass(kw_only=True)
class FleetPlan:
    """A checked fleet run: the command, its coerced parameters and the selected profiles."""

    command: CommandSpec
    params: dict[str, Any]
    profiles: list[str]
    names: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    all_active: bool = False

    def flow_parameters(self, **extra: Any) -> dict[str, Any]:
        """Parameters for the run-command flow: the selection as given (tags resolve at run
        time), the coerced parameters and the pinned command version."""
        parameters: dict[str, Any] = {
            "command": self.command.name,
            "version": self.command.version,
            "params": self.params,
            # always explicit: a deployment's default selection must not widen this one
            "profiles": list(self.names),
            "tags": list(self.tags),
            "all_active": self.all_active,
        }
        parameters.update({k: v for k, v in extra.items() if v is not None})
        return parameters


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """`k=v` strings (CLI --param) as a dict; the command's declarations coerce the values."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"--param {pair!r} is not key=value; write it as name=value")
        result[key.strip()] = value
    return result


def plan_run(
    command: str,
    *,
    profiles: Sequence[str] = (),
    tags: Sequence[str] = (),
    all_active: bool = False,
    params: dict[str, Any] | None = None,
    version: str | None = None,
    url: str | None = None,
) -> FleetPlan:
    """Look the command up, check its parameters, resolve the selection; raise a one-line
    UserError (unknown command/profile/tag, empty selection, bad parameter) otherwise."""
    spec = get_command(command, version=version, url=url)
    values = validate_params(spec, params or {})
    names = resolve_selection(names=profiles, tags=tags, all_active=all_active, url=url)
    return FleetPlan(
        command=spec,
        params=values,
        profiles=names,
        names=list(profiles),
        tags=list(tags),
        all_active=all_active,
    )
