"""Reading commands: the YAML syntax, and a clear one-line error for every bad input."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from fleetwright.commands import CommandSpec, parse_command, read_command_file
from fleetwright.commands.models import ExtractStep, FillStep, GitHubStep, ScrollStep
from fleetwright.errors import CommandSpecError, TemplateError


def parse(text: str) -> CommandSpec:
    return parse_command(yaml.safe_load(text), where="commands/demo.yaml")


def test_syntax_shorthands_and_common_keys() -> None:
    spec = parse(
        """
name: demo
version: 2
description: Sign in and read the greeting.
timeout: 5
params:
  base_url: {type: str, description: Where the site is}
  retries: {type: int, default: 2}
steps:
  - goto: "{{ params.base_url }}/login"
  - fill: {selector: "#user", value: "{{ profile.name }}", timeout: 2}
  - click: "button[type=submit]"
    name: submit the form
  - extract: {id: greeting, selector: "#greeting", kind: text}
  - scroll: bottom
  - scroll: "#footer"
  - screenshot:
  - github.create_issue: {account: ops, repo: o/r, title: "{{ steps.greeting.text }}"}
    id: issue
    optional: true
"""
    )
    assert spec.ref == "demo@2"
    assert spec.timeout == timedelta(seconds=5)
    assert spec.params["retries"].default == 2 and not spec.params["retries"].is_required
    assert spec.params["base_url"].is_required
    fill = spec.steps[1]
    assert isinstance(fill, FillStep) and fill.timeout == timedelta(seconds=2)
    assert spec.steps[2].name == "submit the form"
    extract = spec.steps[3]
    assert isinstance(extract, ExtractStep) and extract.id == "greeting" and extract.kind == "text"
    assert isinstance(spec.steps[4], ScrollStep) and spec.steps[4].to == "bottom"
    assert isinstance(spec.steps[5], ScrollStep) and spec.steps[5].selector == "#footer"
    gh = spec.steps[7]
    assert isinstance(gh, GitHubStep)
    assert gh.action == "github.create_issue" and gh.id == "issue" and gh.optional
    assert gh.args == {"account": "ops", "repo": "o/r", "title": "{{ steps.greeting.text }}"}
    # the stored (JSON) form reads back to the same command
    assert CommandSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_python_command_file() -> None:
    spec = parse("name: scrape\nversion: '1.2.0'\npython: 'mypkg.scrape:run'\n")
    assert spec.python == "mypkg.scrape:run" and spec.steps == []


BAD_CASES = [
    (
        "steps: [{goto: x}, {clik: a}]",
        "commands/demo.yaml: step 2: unknown step kind 'clik'; known: goto, click, fill",
        CommandSpecError,
    ),
    (
        "steps: [{goto: x}, {click: a}, {fill: {selector: '#a'}}]",
        "commands/demo.yaml: step 3 (fill): value: required field is missing",
        CommandSpecError,
    ),
    (
        "steps: [{click: {selector: '#a', buton: left}}]",
        "commands/demo.yaml: step 1 (click): buton: unknown field",
        CommandSpecError,
    ),
    (
        "steps: [{click: a, fill: {selector: b, value: c}}]",
        "step 1: one step kind per step, got click, fill",
        CommandSpecError,
    ),
    ("steps: [{id: x}]", "step 1: no step kind given", CommandSpecError),
    ("steps: [42]", "step 1: a step is a mapping", CommandSpecError),
    ("steps: [{fill: '#a'}]", "step 1: fill takes a mapping of fields", CommandSpecError),
    (
        "steps: [{click: {selector: a, id: x}, id: y}]",
        "step 1: id: given both beside and inside click",
        CommandSpecError,
    ),
    (
        "steps: [{click: a, id: 'bad id'}]",
        "step 1 (click): id: id 'bad id' is not valid",
        CommandSpecError,
    ),
    (
        "steps: [{click: a, id: x}, {click: b, id: x}]",
        "step 2 (click): id 'x' is already used by step 1",
        CommandSpecError,
    ),
    ("steps: [{sleep: 61}]", "step 1 (sleep): seconds: must be between 0 and 60", CommandSpecError),
    (
        "steps: [{click: a, timeout: 0}]",
        "step 1 (click): timeout: timeout must be more",
        CommandSpecError,
    ),
    (
        "steps: [{wait_for: {selector: a, url: b}}]",
        "step 1 (wait_for): give exactly one of selector, url, load_state (got selector, url)",
        CommandSpecError,
    ),
    (
        "steps: [{assert: {}}]",
        "step 1 (assert): give exactly one of text, url, visible, count",
        CommandSpecError,
    ),
    (
        "steps: [{assert: {count: {selector: li}}}]",
        "step 1 (assert): count: give equals, min or max",
        CommandSpecError,
    ),
    (
        "steps: [{extract: {selector: a}}]",
        "step 1 (extract): id: an extract step needs an id",
        CommandSpecError,
    ),
    (
        "steps: [{extract: {selector: a, id: x, kind: attribute}}]",
        "step 1 (extract): attribute: required when kind is 'attribute'",
        CommandSpecError,
    ),
    (
        "steps: [{extract: {selector: a, id: x, kind: html}}]",
        "step 1 (extract): kind: Input should be 'text', 'attribute', 'list' or 'table'",
        CommandSpecError,
    ),
    (
        "steps: [{github.delete_repo: {repo: o/r}}]",
        "step 1: unknown step kind 'github.delete_repo'",
        CommandSpecError,
    ),
    (
        "steps: [{github.create_issue: {title: t}}]",
        "step 1 (github.create_issue): repo: required field is missing",
        CommandSpecError,
    ),
    (
        "steps: [{openai.respond: {account: ai}}]",
        "step 1 (openai.respond): prompt: required field is missing",
        CommandSpecError,
    ),
    ("steps: []", "steps: a command needs at least one step", CommandSpecError),
    (
        "steps: [{assert: {url: {matches: 'a(b'}}}]",
        "step 1 (assert): url.matches: 'a(b' is not a valid regular expression",
        CommandSpecError,
    ),
    (
        "python: 'a.b:run'\nsteps: [{goto: x}]",
        "give either steps or python, not both",
        CommandSpecError,
    ),
    (
        "steps: [{fill: {selector: a, value: '{{ steps.nope.text }}'}}]",
        "step 1 (fill): template '{{ steps.nope.text }}': no earlier step has id 'nope'",
        TemplateError,
    ),
    (
        "steps: [{fill: {selector: a, value: '{{ steps.later.text }}'}},"
        " {extract: {id: later, selector: b}}]",
        "'later' is step 2, which does not run before this one",
        TemplateError,
    ),
    (
        "steps: [{extract: {id: t, selector: b}},"
        " {fill: {selector: a, value: '{{ steps.t.txt }}'}}]",
        "step 2 (fill): template '{{ steps.t.txt }}': step 't' has no output 'txt'"
        " (it has: text, value)",
        TemplateError,
    ),
    (
        "steps: [{click: {selector: '{{ steps.x.y }}', id: x}}]",
        "step 1 (click): template '{{ steps.x.y }}': 'x' is step 1, which does not run before",
        TemplateError,
    ),
    (
        "steps: [{goto: '{{ params.missing }}'}]",
        "command 'demo' declares no parameter 'missing' (declared: none)",
        TemplateError,
    ),
    (
        "steps: [{goto: '{{ env.HOME }}'}]",
        "env is not available in templates",
        TemplateError,
    ),
    (
        "steps: [{goto: '{{ secrets.token }}'}]",
        "unknown name 'secrets'; use steps, params, profile, run",
        TemplateError,
    ),
    ("steps: [{goto: '{{ profile.passwd }}'}]", "profiles have no field 'passwd'", TemplateError),
    ("steps: [{goto: '{{ run.nope }}'}]", "runs have no field 'nope'", TemplateError),
    ("steps: [{goto: '{{ params.x | upper }}'}]", "is not a plain path", TemplateError),
    ("steps: [{goto: '{{ params.x '}]", "without a closing", TemplateError),
]


@pytest.mark.parametrize(("body", "message", "error"), BAD_CASES)
def test_bad_steps(body: str, message: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        parse("name: demo\nversion: '1'\n" + body)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (
            "name: demo\nversion: 1.10",
            'version: write the version as a quoted string, e.g. version: "1.1"',
        ),
        ("name: demo\nversion: 'a b'", "version: version 'a b' is not valid"),
        ("name: demo", "version: required field is missing"),
        ("name: 'a/b'\nversion: '1'", "name: command name 'a/b' contains a path separator"),
        ("name: demo\nversion: '1'\nsteps2: []", "steps2: unknown field"),
        (
            "name: demo\nversion: '1'\nparams: {n: {type: int, default: x}}",
            "params.n: default 'x' is not of type int",
        ),
        (
            "name: demo\nversion: '1'\nparams: {n: {type: complex}}",
            "params.n.type: Input should be",
        ),
        (
            "name: demo\nversion: '1'\nparams: {'bad-name': {type: int}}",
            "parameter name 'bad-name' is not valid",
        ),
        (
            "name: demo\nversion: '1'\ntrace: sometimes",
            "trace: Input should be 'off', 'on', 'on-failure' or 'on-retry'",
        ),
    ],
)
def test_bad_command_fields(head: str, message: str) -> None:
    with pytest.raises(CommandSpecError, match=r"^commands/demo\.yaml: ") as info:
        parse(head + "\nsteps: [{goto: x}]" if "steps" not in head else head)
    assert message in str(info.value)


def test_not_a_mapping() -> None:
    with pytest.raises(
        CommandSpecError, match="a command is a mapping with name, version and steps"
    ):
        parse_command(["goto"], where="x.yaml")


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: demo\nversion: '1'\nsteps:\n  - goto: x\n  - click: [a\n")
    with pytest.raises(CommandSpecError) as info:
        read_command_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:6: invalid YAML: ") or message.startswith(
        f"{path}:5: invalid YAML: "
    )
    assert "\n" not in message


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: demo\nversion: '1'\nsteps:\n  - click: a\n    click: b\n")
    with pytest.raises(CommandSpecError, match=r"dup.yaml:5: invalid YAML: duplicate key 'click'"):
        read_command_file(path)


def test_step_errors_in_files_carry_the_line(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(
        "name: demo\nversion: '1'\nsteps:\n  - goto: x\n  - click: a\n\n  - fill:\n"
        "      selector: '#a'\n"
    )
    with pytest.raises(CommandSpecError) as info:
        read_command_file(path)
    assert str(info.value) == f"{path}:7: step 3 (fill): value: required field is missing"


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CommandSpecError, match=r"bin\.yaml: cannot read the file"):
        read_command_file(path)


def test_project_examples_validate() -> None:
    root = Path(__file__).resolve().parents[2] / "commands"
    files = sorted(root.glob("*.yaml"))
    assert files, "commands/ has example commands"
    for path in files:
        spec = read_command_file(path)
        assert spec.name and spec.version
