"""Templates (render, types, unknown names) and run parameters (defaults, coercion, errors)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fleetwright.commands import parse_command, render, render_value, validate_params
from fleetwright.errors import TemplateError, ValidationError

SCOPE: dict[str, Any] = {
    "steps": {"t": {"text": "Hi", "rows": [{"Name": "Widget"}], "n": 3, "ok": True}},
    "params": {"q": "shoes", "tags": ["a", "b"], "none": None},
    "profile": {"name": "alice"},
    "run": {"id": 9},
}


def test_render_text() -> None:
    assert (
        render("{{ params.q }} for {{profile.name}} #{{ run.id }}", SCOPE) == "shoes for alice #9"
    )
    assert render("{{ steps.t.rows.0.Name }}", SCOPE) == "Widget"
    assert render("n={{ steps.t.n }} ok={{ steps.t.ok }}", SCOPE) == "n=3 ok=true"
    assert render("{{ params.tags }}", SCOPE) == '["a", "b"]'
    assert render("[{{ params.none }}]", SCOPE) == "[]"
    assert render("no templates", SCOPE) == "no templates"


def test_render_value_keeps_types_for_whole_templates() -> None:
    value = {"labels": "{{ params.tags }}", "n": "{{ steps.t.n }}", "t": "x {{ steps.t.n }}"}
    assert render_value(value, SCOPE, keep_types=True) == {"labels": ["a", "b"], "n": 3, "t": "x 3"}
    assert render_value(value, SCOPE) == {"labels": '["a", "b"]', "n": "3", "t": "x 3"}
    assert render_value(["{{ profile.name }}", 1], SCOPE) == ["alice", 1]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ steps.x.text }}", "template '{{ steps.x.text }}': 'x' is not in steps (has: t)"),
        ("{{ steps.t.txt }}", "'txt' is not in steps.t (has: n, ok, rows, text)"),
        ("{{ steps.t.rows.5.Name }}", "steps.t.rows has 1 items, no item 5"),
        ("{{ steps.t.text.upper }}", "steps.t.text is a str, it has no field 'upper'"),
        ("{{ env.PATH }}", "env is not available in templates"),
        ("{{ os.environ }}", "unknown name 'os'"),
        ("{{ params }}", "name a field, e.g. params.<name>"),
        ("{{ params.q.__class__ }}", "params.q is a str, it has no field '__class__'"),
        ("{{ 1 + 1 }}", "is not a plain path"),
        ("{{ params.q", "without a closing"),
    ],
)
def test_render_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(template, SCOPE)
    assert message in str(info.value)


def _spec(params: str) -> Any:
    text = f"name: demo\nversion: '1'\nparams: {params}\nsteps: [{{goto: 'about:blank'}}]"
    return parse_command(yaml.safe_load(text))


def test_params_defaults_and_coercion() -> None:
    spec = _spec(
        "{n: {type: int}, f: {type: float, default: 1.5}, b: {type: bool, default: false},"
        " s: {type: str, required: false}, l: {type: list, default: []},"
        " d: {type: dict, default: {}}}"
    )
    assert validate_params(spec, {"n": "3"}) == {
        "n": 3,
        "f": 1.5,
        "b": False,
        "s": None,
        "l": [],
        "d": {},
    }
    got = validate_params(
        spec, {"n": 4, "f": "2", "b": "yes", "s": 5, "l": "a, b", "d": '{"k": 1}'}
    )
    assert got == {"n": 4, "f": 2.0, "b": True, "s": "5", "l": ["a", "b"], "d": {"k": 1}}
    assert validate_params(spec, {"n": "7", "l": '["x", 2]'})["l"] == ["x", 2]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "command 'demo': parameter 'n' (int) is required; pass it as n=<value>"),
        ({"n": 1, "m": 2}, "command 'demo': unknown parameter 'm' (declared: n, b, d)"),
        ({"n": "three"}, "command 'demo': parameter 'n': expected int, got 'three'"),
        ({"n": True}, "command 'demo': parameter 'n': expected int, got True"),
        ({"n": 1, "b": "maybe"}, "command 'demo': parameter 'b': expected bool, got 'maybe'"),
        ({"n": 1, "d": "[1]"}, "command 'demo': parameter 'd': expected dict, got '[1]'"),
        ({"n": 1.5}, "command 'demo': parameter 'n': expected int, got 1.5"),
    ],
)
def test_params_errors(given: dict[str, Any], message: str) -> None:
    spec = _spec(
        "{n: {type: int}, b: {type: bool, default: true}, d: {type: dict, required: false}}"
    )
    with pytest.raises(ValidationError) as info:
        validate_params(spec, given)
    assert str(info.value) == message


def test_profile_fields_the_session_engine_provides_pass_the_static_check() -> None:
    from fleetwright.sessions.engine import profile_scope
    from fleetwright.specs import ProfileSpec

    scope = profile_scope(ProfileSpec(name="p1", tags=["qa"]))
    steps = ", ".join(f"{{goto: 'about:blank#{{{{ profile.{k} }}}}'}}" for k in scope)
    spec = parse_command(yaml.safe_load(f"name: d\nversion: '1'\nsteps: [{steps}]"))
    assert len(spec.steps) == len(scope)


def _secret_command(default: str | None = "site-{{ profile.name }}") -> Any:
    password: dict[str, Any] = {"type": "secret"}
    if default is not None:
        password["default"] = default
    return parse_command(
        {
            "name": "login",
            "version": "1",
            "params": {"password": password},
            "steps": [{"fill": {"selector": "#pw", "value": "{{ params.password }}"}}],
        }
    )


async def test_secret_params_carry_block_names_and_resolve_per_profile() -> None:
    from fleetwright.commands.secrets import resolve_secret_params

    spec = _secret_command()
    values = validate_params(spec, {})
    assert values == {"password": "site-{{ profile.name }}"}  # a name, never the value
    assert validate_params(spec, {"password": "shared-login"}) == {"password": "shared-login"}
    asked: list[str] = []

    async def loader(name: str) -> str:
        asked.append(name)
        return f"value-of-{name}"

    resolved, secrets = await resolve_secret_params(
        spec, values, profile={"name": "Ada_1"}, loader=loader
    )
    # a rendered per-profile name becomes a valid block name, as `fleetwright secret set` does
    assert asked[0].startswith("site-ada-1-") and resolved["password"] == secrets[0]


@pytest.mark.parametrize("given", ["hunter2 with spaces", "Pa$$w0rd!", 12345])
def test_secret_param_refuses_what_looks_like_the_secret_itself(given: Any) -> None:
    with pytest.raises(ValidationError, match="name of a Secret block") as info:
        validate_params(_secret_command(), {"password": given})
    assert str(given) not in info.value.message


def test_secret_name_template_may_only_use_profile_fields() -> None:
    with pytest.raises(TemplateError, match=r"parameter 'password'.*only use profile fields"):
        _secret_command("site-{{ run.id }}")
    with pytest.raises(TemplateError, match="parameter 'password'"):
        _secret_command("site-{{ profile.nope }}")
