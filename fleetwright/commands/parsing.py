"""Reading commands as users write them (YAML) into CommandSpec, with errors that point at the
file, line, step and field."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from fleetwright.commands.models import ACTIONS, INTEGRATION_ACTIONS, STEP_MODELS, CommandSpec
from fleetwright.commands.templating import check_templates
from fleetwright.errors import CommandSpecError, TemplateError
from fleetwright.specs import format_validation_error

__all__ = ["display_path", "normalize_step", "parse_command", "read_command_file"]

COMMON_KEYS = ("id", "name", "timeout", "optional", "continue_on_error")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent overwrite hides typos)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it is under it, for messages."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def normalize_step(raw: Any) -> dict[str, Any]:
    """A YAML step (`- fill: {selector: ..., value: ...}`) as a mapping with an `action` key.

    Raises ValueError with the message to show; the caller adds file and step.
    """
    if isinstance(raw, str) and raw in STEP_MODELS:
        raw = {raw: None}
    if not isinstance(raw, Mapping):
        raise ValueError(
            'a step is a mapping such as `- click: "#submit"`, got ' + type(raw).__name__
        )
    kinds = [k for k in raw if k not in COMMON_KEYS]
    if not kinds:
        raise ValueError(f"no step kind given; known: {', '.join(ACTIONS)}")
    if len(kinds) > 1:
        raise ValueError(f"one step kind per step, got {', '.join(map(str, kinds))}")
    action = str(kinds[0])
    model = STEP_MODELS.get(action)
    if model is None:
        raise ValueError(f"unknown step kind {action!r}; known: {', '.join(ACTIONS)}")
    body = raw[action]
    if body is None:
        body = {}
    elif not isinstance(body, Mapping):
        if model.SHORTHAND is None and action != "scroll":
            raise ValueError(f"{action} takes a mapping of fields, e.g. `{action}: {{...}}`")
        if action == "scroll":
            body = {"to": body} if body in ("top", "bottom") else {"selector": body}
        else:
            body = {model.SHORTHAND: body}
    body = dict(body)
    common = {k: raw[k] for k in COMMON_KEYS if k in raw}
    for key in COMMON_KEYS:
        if key in body:
            if key in common:
                raise ValueError(f"{key}: given both beside and inside {action}; give it once")
            common[key] = body.pop(key)
    if "continue_on_error" in common:
        if "optional" in common:
            raise ValueError("give optional or continue_on_error, not both")
        common["optional"] = common.pop("continue_on_error")
    if action in INTEGRATION_ACTIONS:
        return {"action": action, **common, "args": body}
    return {"action": action, **common, **body}


def _step_lines(text: str) -> list[int]:
    """1-based line of each item under the top-level `steps:` (best effort)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "steps" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def parse_command(data: Any, *, where: str = "", lines: list[int] | None = None) -> CommandSpec:
    """A CommandSpec from YAML-shaped `data`; CommandSpecError/TemplateError pointing at
    `where` (a file), the step and the field."""
    prefix = f"{where}: " if where else ""

    def at(index: int) -> str:
        if where and lines and index < len(lines):
            return f"{where}:{lines[index]}: "
        return prefix

    if not isinstance(data, Mapping):
        raise CommandSpecError(
            f"{prefix}a command is a mapping with name, version and steps; "
            f"got {type(data).__name__}"
        )
    data = dict(data)
    raw_steps = data.get("steps", [])
    if raw_steps is None:
        raw_steps = []
    if not isinstance(raw_steps, list):
        raise CommandSpecError(f"{prefix}steps: must be a list of steps")
    steps: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_steps):
        label = f"step {index + 1}"
        try:
            norm = normalize_step(raw)
        except ValueError as exc:
            raise CommandSpecError(f"{at(index)}{label}: {exc}") from None
        label = f"{label} ({norm['action']})"
        try:
            STEP_MODELS[norm["action"]].model_validate(norm)
        except PydanticValidationError as exc:
            raise CommandSpecError(
                format_validation_error(exc, where=f"{at(index)}{label}")
            ) from None
        steps.append(norm)
    data["steps"] = steps
    try:
        spec = CommandSpec.model_validate(data)
    except PydanticValidationError as exc:
        raise CommandSpecError(format_validation_error(exc, where=where)) from None
    seen: dict[str, int] = {}
    for index, step in enumerate(spec.steps):
        if step.id is not None:
            if step.id in seen:
                raise CommandSpecError(
                    f"{at(index)}step {index + 1} ({step.action_name}): id {step.id!r} is "
                    f"already used by step {seen[step.id] + 1}; ids must be unique"
                )
            seen[step.id] = index
    try:
        check_templates(spec)
    except TemplateError as exc:
        raise TemplateError(f"{prefix}{exc.message}") from None
    return spec


#: A command file is read and parsed whole: cap it (real ones are a few KB).
MAX_COMMAND_FILE_BYTES = 1024 * 1024


def read_command_file(path: Path) -> CommandSpec:
    """Read and validate one YAML command file; one-line errors with file and line."""
    shown = display_path(path)
    try:
        size = path.stat().st_size
        if size > MAX_COMMAND_FILE_BYTES:
            raise CommandSpecError(
                f"{shown}: the file is {size} bytes; a command file is at most "
                f"{MAX_COMMAND_FILE_BYTES} bytes"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandSpecError(f"{shown}: cannot read the file ({type(exc).__name__})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CommandSpecError(f"{shown}{line}: invalid YAML: {problem}") from None
    return parse_command(data, where=shown, lines=_step_lines(text))
