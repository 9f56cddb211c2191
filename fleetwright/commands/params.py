"""Run parameters checked against a command's declarations, with coercion from CLI strings."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from fleetwright.commands.models import CommandSpec, ParamSpec
from fleetwright.errors import ValidationError

__all__ = ["coerce_param", "validate_params"]

# a Secret block's name, or a name template over profile fields (a declared default)
_SECRET_NAME = re.compile(r"^(?:[a-z0-9-]|\{\{ *profile\.[A-Za-z0-9_]+ *\}\}){1,100}$")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def coerce_param(spec: ParamSpec, value: Any) -> Any:
    """`value` as the declared type; strings are parsed (CLI input). ValueError if it can't be."""
    kind = spec.type
    if kind == "secret":
        if isinstance(value, str) and _SECRET_NAME.match(value.strip()):
            return value.strip()
        # never echo the value: it may be the secret itself, passed by mistake
        raise ValueError(
            "expected the name of a Secret block (lowercase letters, digits and dashes; "
            "store one with `fleetwright secret set NAME`), not the secret itself"
        )
    if kind == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif kind in ("list", "dict"):
        want: type = list if kind == "list" else dict
        if isinstance(value, want):
            return value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, want):
                return parsed
            if kind == "list" and parsed is None:
                return [part.strip() for part in value.split(",") if part.strip()]
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise ValueError(f"expected {kind}, got {shown}")


def validate_params(spec: CommandSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """The run's parameters: declared defaults filled in, types coerced; one-line
    ValidationError naming the command and the parameter when something is wrong.
    A Python command that declares no parameters receives `given` unchanged."""
    declared = spec.params
    if spec.python and not declared:
        return dict(given)  # a Python command that declares nothing takes what it is given
    unknown = sorted(set(given) - set(declared))
    if unknown:
        names = ", ".join(declared) or "none"
        raise ValidationError(
            f"command {spec.name!r}: unknown parameter {unknown[0]!r} (declared: {names})"
        )
    result: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given and given[name] is not None:
            try:
                result[name] = coerce_param(param, given[name])
            except ValueError as exc:
                raise ValidationError(f"command {spec.name!r}: parameter {name!r}: {exc}") from None
        elif param.is_required:
            raise ValidationError(
                f"command {spec.name!r}: parameter {name!r} ({param.type}) is required; "
                f"pass it as {name}=<value>"
            )
        else:
            result[name] = param.default
    return result
