"""Python commands: `async def run(page, ctx) -> dict | None`, found by dotted path
("pkg.module:function") or by name in the `fleetwright.commands` entry-point group."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Awaitable, Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, cast

from playwright.async_api import Page

from fleetwright.commands.context import CommandContext
from fleetwright.commands.models import CommandSpec
from fleetwright.errors import CommandSpecError

__all__ = [
    "ENTRY_POINT_GROUP",
    "PythonCommand",
    "entry_point_command",
    "entry_point_commands",
    "resolve_python_command",
]

ENTRY_POINT_GROUP = "fleetwright.commands"
PythonCommand = Callable[[Page, CommandContext], Awaitable[dict[str, Any] | None]]

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def entry_point_commands() -> dict[str, EntryPoint]:
    """Installed Python commands by entry-point name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _import(ref: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise CommandSpecError(
                f"python command {ref!r}: module {module_name!r} not found; "
                "install it or fix the path (format: package.module:function)"
            ) from None
        raise CommandSpecError(
            f"python command {ref!r}: importing {module_name!r} failed: no module named {missing!r}"
        ) from None
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CommandSpecError(
            f"python command {ref!r}: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {first}"
        ) from None


def resolve_python_command(ref: str) -> PythonCommand:
    """The async function `ref` names (a dotted path or an entry-point name)."""
    target = ref
    if ":" not in ref:
        ep = entry_point_commands().get(ref)
        if ep is None:
            installed = ", ".join(sorted(entry_point_commands())) or "none"
            raise CommandSpecError(
                f"python command {ref!r}: not a path like 'package.module:function' and no "
                f"entry point of that name in group {ENTRY_POINT_GROUP!r} (installed: {installed})"
            )
        target = ep.value
    module_name, _, attr_path = target.partition(":")
    module_name, attr_path = module_name.strip(), attr_path.strip()
    if not _MODULE.match(module_name) or not _MODULE.match(attr_path):
        raise CommandSpecError(f"python command {ref!r}: write it as 'package.module:function'")
    obj = _import(ref, module_name)
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise CommandSpecError(
                f"python command {ref!r}: module {module_name!r} has no attribute {attr_path!r}"
            )
        obj = getattr(obj, part)
    if not callable(obj) or not inspect.iscoroutinefunction(obj):
        raise CommandSpecError(
            f"python command {ref!r} is not an async function; define it as "
            "`async def run(page, ctx) -> dict | None`"
        )
    return cast(PythonCommand, obj)


def entry_point_command(name: str) -> CommandSpec | None:
    """A CommandSpec for an installed entry-point command, or None if there is none."""
    ep = entry_point_commands().get(name)
    if ep is None:
        return None
    version = ep.dist.version if ep.dist is not None else "0"
    fn = resolve_python_command(name)
    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    try:
        return CommandSpec(
            name=name, version=version, python=ep.value, description=doc[0] if doc else ""
        )
    except ValueError as exc:
        raise CommandSpecError(f"entry point {name!r}: {exc}") from None
