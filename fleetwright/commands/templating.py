"""Templates in step arguments: only `{{ path.to.value }}`, over steps, params, profile, run.

A small evaluator rather than a template engine: no expressions, filters or attribute access,
so a template can read values but never run code, and every name can be checked at load time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fleetwright.commands.models import CommandSpec, StepBase
from fleetwright.errors import TemplateError
from fleetwright.specs import Fingerprint, ProfileSpec

__all__ = [
    "NON_TEMPLATED",
    "PROFILE_FIELDS",
    "ROOTS",
    "RUN_FIELDS",
    "Reference",
    "check_templates",
    "find_references",
    "has_template",
    "render",
    "render_value",
    "step_label",
]

ROOTS = ("steps", "params", "profile", "run")
# What the session engine may put in `profile`: the spec's fields and the fingerprint's, flat.
PROFILE_FIELDS: frozenset[str] = frozenset(
    {"id", *ProfileSpec.model_fields, *Fingerprint.model_fields}
)
RUN_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "flow_run_id",
        "task_run_id",
        "attempt",
        "started_at",
        "command",
        "version",
        "idempotency_key",
    }
)
NON_TEMPLATED: frozenset[str] = frozenset({"action", "id", "name", "timeout", "optional"})

_OPEN = "{{"
_BLOCK = re.compile(r"\{\{(.*?)\}\}", re.S)
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*$")
_WHOLE = re.compile(r"^\{\{[^{}]*\}\}$")


@dataclass(frozen=True)
class Reference:
    """One `{{ ... }}` in a string: its text and the path it names."""

    template: str
    path: tuple[str, ...]


def has_template(text: str) -> bool:
    return _OPEN in text


def find_references(text: str) -> list[Reference]:
    """The templates in `text`; TemplateError for anything that is not a plain path."""
    refs: list[Reference] = []
    for match in _BLOCK.finditer(text):
        inner = match.group(1).strip()
        if not _PATH.match(inner):
            raise TemplateError(
                f"template {match.group(0)!r} is not a plain path; templates are only "
                "{{ steps.<id>.<field> }}, {{ params.<name> }}, {{ profile.<field> }}, "
                "{{ run.<field> }}"
            )
        refs.append(Reference(match.group(0), tuple(inner.split("."))))
    rest = _BLOCK.sub("", text)
    if _OPEN in rest:
        raise TemplateError(f"template in {text!r} has '{{{{' without a closing '}}}}'")
    return refs


def _check_root(ref: Reference) -> None:
    root = ref.path[0]
    if root == "env":
        raise TemplateError(
            f"template {ref.template!r}: env is not available in templates; "
            "declare a parameter and pass the value as params.<name>"
        )
    if root not in ROOTS:
        raise TemplateError(
            f"template {ref.template!r}: unknown name {root!r}; use {', '.join(ROOTS)}"
        )
    if len(ref.path) < 2:
        raise TemplateError(f"template {ref.template!r}: name a field, e.g. {root}.<name>")


def _lookup(ref: Reference, scope: Mapping[str, Any]) -> Any:
    _check_root(ref)
    value: Any = scope
    for depth, key in enumerate(ref.path):
        where = ".".join(ref.path[:depth]) or "the template scope"
        if isinstance(value, Mapping):
            if key not in value:
                have = ", ".join(sorted(str(k) for k in value)) or "nothing"
                raise TemplateError(
                    f"template {ref.template!r}: {key!r} is not in {where} (has: {have})"
                )
            value = value[key]
        elif isinstance(value, list) and key.isdigit():
            if int(key) >= len(value):
                raise TemplateError(
                    f"template {ref.template!r}: {where} has {len(value)} items, no item {key}"
                )
            value = value[int(key)]
        else:
            raise TemplateError(
                f"template {ref.template!r}: {where} is a {type(value).__name__}, "
                f"it has no field {key!r}"
            )
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str)


def render(text: str, scope: Mapping[str, Any]) -> str:
    """`text` with every template replaced by the text of the value it names."""
    if _OPEN not in text:
        return text
    refs = iter(find_references(text))
    return _BLOCK.sub(lambda _m: _as_text(_lookup(next(refs), scope)), text)


def render_value(value: Any, scope: Mapping[str, Any], *, keep_types: bool = False) -> Any:
    """Render every string inside `value` (dicts, lists); with keep_types a string that is
    one whole template becomes the value itself (a list stays a list)."""
    if isinstance(value, str):
        if keep_types and _WHOLE.match(value.strip()):
            refs = find_references(value)
            if len(refs) == 1:
                return _lookup(refs[0], scope)
        return render(value, scope)
    if isinstance(value, dict):
        return {k: render_value(v, scope, keep_types=keep_types) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, scope, keep_types=keep_types) for v in value]
    return value


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def step_label(index: int, step: StepBase) -> str:
    """`step 3 (fill)`: how messages name a step (1-based, as users count)."""
    return f"step {index + 1} ({step.action_name})"


def check_templates(spec: CommandSpec) -> None:
    """Check every template against what exists before the step runs; TemplateError if not."""
    for name, param in spec.params.items():
        if param.type == "secret" and isinstance(param.default, str):
            try:
                for ref in find_references(param.default):
                    _check_root(ref)
                    if ref.path[0] != "profile" or ref.path[1] not in PROFILE_FIELDS:
                        raise TemplateError(
                            f"template {ref.template!r}: a secret's block name may only use "
                            "profile fields, e.g. {{ profile.name }}"
                        )
            except TemplateError as exc:
                raise TemplateError(f"parameter {name!r}: {exc.message}") from None
    earlier: dict[str, StepBase] = {}
    later = {s.id: i for i, s in enumerate(spec.steps) if s.id}
    for index, step in enumerate(spec.steps):
        data = step.model_dump(exclude=set(NON_TEMPLATED))
        for text in _strings(data):
            try:
                for ref in find_references(text):
                    _check_static(ref, spec, earlier, later)
            except TemplateError as exc:
                raise TemplateError(f"{step_label(index, step)}: {exc.message}") from None
        if step.id:
            earlier[step.id] = step


def _check_static(
    ref: Reference, spec: CommandSpec, earlier: dict[str, StepBase], later: dict[str, int]
) -> None:
    _check_root(ref)
    root, key = ref.path[0], ref.path[1]
    if root == "steps":
        if key not in earlier:
            if key in later:
                where = f"step {later[key] + 1}, which does not run before this one"
                raise TemplateError(f"template {ref.template!r}: {key!r} is {where}")
            known = ", ".join(earlier) or "none"
            raise TemplateError(
                f"template {ref.template!r}: no earlier step has id {key!r} (earlier ids: {known})"
            )
        fields = earlier[key].output_fields()
        if len(ref.path) > 2 and fields is not None and ref.path[2] not in fields:
            have = ", ".join(sorted(fields)) or "no outputs"
            raise TemplateError(
                f"template {ref.template!r}: step {key!r} has no output {ref.path[2]!r} "
                f"(it has: {have})"
            )
    elif root == "params" and key not in spec.params:
        declared = ", ".join(spec.params) or "none"
        raise TemplateError(
            f"template {ref.template!r}: command {spec.name!r} declares no parameter "
            f"{key!r} (declared: {declared}); add it under params:"
        )
    elif root == "profile" and key not in PROFILE_FIELDS:
        raise TemplateError(
            f"template {ref.template!r}: profiles have no field {key!r} "
            f"(fields: {', '.join(sorted(PROFILE_FIELDS))})"
        )
    elif root == "run" and key not in RUN_FIELDS:
        raise TemplateError(
            f"template {ref.template!r}: runs have no field {key!r} "
            f"(fields: {', '.join(sorted(RUN_FIELDS))})"
        )
