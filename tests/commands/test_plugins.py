"""Python commands: dotted paths, entry points, a python step among YAML steps, and errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetwright.commands import CommandContext, CommandSpec, resolve_python_command, run_steps
from fleetwright.commands.loader import get_command
from fleetwright.commands.plugins import entry_point_commands
from fleetwright.errors import CommandSpecError, StepError

Cmd = Callable[[str], CommandSpec]

SOURCE = '''
"""Sample Python commands for the tests."""


async def run(page, ctx):
    """Read the greeting of the account page."""
    await page.goto(ctx.params["base_url"] + "/account?user=" + ctx.profile["name"])
    text = await page.locator("#greeting").inner_text()
    return {"greeting": text, "earlier": sorted(ctx.outputs)}


async def nothing(page, ctx):
    return None


async def returns_list(page, ctx):
    return [1, 2]


async def raises(page, ctx):
    raise ValueError("the page looked odd")


def not_async(page, ctx):
    return {}


value = 3
'''


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real module on sys.path with sample commands; returns its (unique) name."""
    name = f"fw_sample_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(SOURCE)
    (tmp_path / f"{name}_broken.py").write_text("import fw_no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.fixture
def entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> str:
    """An installed distribution (dist-info on sys.path) exposing a fleetwright.commands entry."""
    ep_name = f"sample-{uuid.uuid4().hex[:6]}"
    dist = tmp_path / "site" / "fw_sample_dist-1.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fw-sample-dist\nVersion: 1.3\n")
    (dist / "entry_points.txt").write_text(
        f"[fleetwright.commands]\n{ep_name} = {plugin_module}:run\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return ep_name


def test_resolve_dotted_path(plugin_module: str) -> None:
    fn = resolve_python_command(f"{plugin_module}:run")
    assert fn.__name__ == "run"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("fw_no_such_module_xyz:run", "module 'fw_no_such_module_xyz' not found"),
        (
            "{mod}_broken:run",
            "importing '{mod}_broken' failed: no module named 'fw_no_such_dependency_xyz'",
        ),
        ("{mod}:missing", "module '{mod}' has no attribute 'missing'"),
        ("{mod}:not_async", "is not an async function; define it as `async def run(page, ctx)"),
        ("{mod}:value", "is not an async function"),
        ("{mod}:", "write it as 'package.module:function'"),
        ("no-such-entry-point", "no entry point of that name in group 'fleetwright.commands'"),
    ],
)
def test_resolve_errors(plugin_module: str, ref: str, message: str) -> None:
    with pytest.raises(CommandSpecError) as info:
        resolve_python_command(ref.format(mod=plugin_module))
    assert message.format(mod=plugin_module) in str(info.value)


def test_entry_point_is_found(entry_point: str, plugin_module: str, home: Path) -> None:
    assert entry_point in entry_point_commands()
    assert resolve_python_command(entry_point).__name__ == "run"
    spec = get_command(entry_point)
    assert spec.version == "1.3"
    assert spec.python == f"{plugin_module}:run"
    assert spec.description == "Read the greeting of the account page."


@pytest.mark.browser
async def test_python_command_runs_on_a_page(
    page: Any, ctx: CommandContext, site: str, entry_point: str, home: Path
) -> None:
    spec = get_command(entry_point)
    ctx.profile["name"] = "dora"
    ctx.params = {"base_url": site}  # undeclared: a Python command gets them as given
    result = await run_steps(page, spec, ctx)
    assert result.outputs == {"run": {"greeting": "Signed in as dora", "earlier": []}}


@pytest.mark.browser
async def test_python_step_among_yaml_steps(
    page: Any, ctx: CommandContext, site: str, plugin_module: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: mixed
version: "1"
params: {{base_url: {{type: str}}}}
steps:
  - goto: "{site}/widgets"
  - extract: {{id: first, selector: "#items li"}}
  - python: "{plugin_module}:run"
    id: py
  - python: "{plugin_module}:nothing"
    id: quiet
  - assert: {{text: {{selector: "#greeting", contains: "{{{{ steps.py.greeting }}}}"}}}}
"""
    )
    ctx.params = {"base_url": site}
    result = await run_steps(page, spec, ctx)
    assert result.outputs["py"] == {"greeting": "Signed in as alice", "earlier": ["first"]}
    assert result.outputs["quiet"] == {}


@pytest.mark.browser
@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("returns_list", "returned a list; it must return a dict (or None)"),
        ("raises", "step 1 (python): ValueError: the page looked odd"),
        ("not_async", "is not an async function"),
    ],
)
async def test_python_step_failures(
    page: Any, ctx: CommandContext, plugin_module: str, cmd: Cmd, function: str, message: str
) -> None:
    spec = cmd(f"name: bad\nversion: '1'\npython: '{plugin_module}:{function}'\n")
    with pytest.raises((StepError, CommandSpecError)) as info:
        await run_steps(page, spec, ctx)
    assert message in str(info.value)
    assert info.value.step_id == "run"  # type: ignore[union-attr]
