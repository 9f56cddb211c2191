"""Schema-valid GitHub webhook payloads for tests: `webhook_payload("issues", action="labeled",
issue={...}, label={...})` fills every field githubkit's model of that event requires with a
placeholder and keeps the fields you give (nested dicts and lists of dicts are filled the same
way), so the receiver's typed parsing accepts it as GitHub's own delivery."""

from __future__ import annotations

import datetime
import enum
import importlib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

__all__ = ["webhook_payload"]


class _Missing:
    pass


_MISSING: Any = _Missing()


def _is_unset(tp: Any) -> bool:
    return getattr(tp, "__name__", "") == "Unset" and issubclass(tp, enum.Enum)


def _scalar(tp: Any) -> Any:
    if tp is Any or tp is object or tp is type(None):
        return None
    if isinstance(tp, type):
        if issubclass(tp, bool):
            return False
        if issubclass(tp, int):
            return 1
        if issubclass(tp, float):
            return 1.0
        if issubclass(tp, str):
            return "placeholder"
        if issubclass(tp, datetime.datetime):
            return "2026-01-01T00:00:00Z"
        if issubclass(tp, datetime.date):
            return "2026-01-01"
        if issubclass(tp, enum.Enum):
            return next(iter(tp)).value
    raise TypeError(f"no placeholder for {tp!r}")


def _fill(tp: Any, given: Any) -> Any:
    origin = get_origin(tp)
    if origin is Annotated:
        return _fill(get_args(tp)[0], given)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        options = [a for a in args if a is not type(None) and not _is_unset(a)]
        if given is _MISSING:
            return None if type(None) in args else _fill(options[0], _MISSING)
        if isinstance(given, dict):
            models = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
            return _fill(models[0], given) if models else given
        if isinstance(given, list):
            lists = [o for o in options if get_origin(o) is list]
            return _fill(lists[0], given) if lists else given
        return given
    if origin is Literal:
        return get_args(tp)[0] if given is _MISSING else given
    if origin is list:
        (item,) = get_args(tp) or (Any,)
        return [] if given is _MISSING else [_fill(item, x) for x in given]
    if origin is dict:
        return {} if given is _MISSING else given
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        partial: dict[str, Any] = {} if given is _MISSING else dict(given)
        out: dict[str, Any] = {}
        for name, info in tp.model_fields.items():
            key = info.alias or name
            if key in partial:
                out[key] = _fill(info.annotation, partial.pop(key))
            elif info.is_required():
                out[key] = _fill(info.annotation, _MISSING)
        return out | partial  # fields the model does not know pass through
    return _scalar(tp) if given is _MISSING else given


def _event_model(event: str, action: str | None) -> Any:
    from githubkit.webhooks import parse

    package = parse.__module__.rsplit(".", 1)[0]
    model = importlib.import_module(f"{package}.{event}").Event
    if get_origin(model) is Annotated:
        model = get_args(model)[0]
    if get_origin(model) not in (Union, types.UnionType):
        return model
    for member in get_args(model):
        field = member.model_fields.get("action")
        if field is not None and action in get_args(field.annotation):
            return member
    raise ValueError(f"githubkit has no {event!r} event with action {action!r}")


def webhook_payload(event: str, **fields: Any) -> dict[str, Any]:
    """A payload of GitHub webhook `event` (the X-GitHub-Event name) with `fields` (for events
    with actions, give `action=`) that githubkit's model of that event accepts."""
    model = _event_model(event, fields.get("action"))
    payload: dict[str, Any] = _fill(model, fields)
    return payload
