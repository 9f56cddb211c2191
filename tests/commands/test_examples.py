"""Every shipped example runs: each command in commands/ and each command in the docs' YAML
blocks, against the demo site, with the real integrations talking to the loopback fake GitHub
and OpenAI servers (fleetwright.testing). A YAML block in the docs that is a whole command
(`name` and `steps`) is run; a block of steps or a `params:` block is checked to parse as part
of a command."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.commands import CommandContext, CommandSpec, parse_command, read_command_file
from fleetwright.commands import run_steps as run_command_steps
from fleetwright.commands.models import GitHubStep, OpenAIStep
from fleetwright.integrations import Integrations
from fleetwright.testing.fake_github import FakeGitHub
from fleetwright.testing.fake_openai import FakeOpenAI
from fleetwright.testing.site import PRODUCTS, serve_site

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "commands"
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
#: Values for parameters the examples require (base_url is always the test site).
VALUES: dict[str, Any] = {"password": "pw", "repo": "acme/reports"}
REPOS = ["acme/reports", "acme/support", "octo-org/prices"]
GITHUB_ACCOUNTS = ["ops", "bot"]
OPENAI_ACCOUNTS = ["ai"]


def _doc_blocks() -> Iterator[tuple[str, Any]]:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"^ *```yaml\n(.*?)^ *```", text, re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            source = "\n".join(_dedent(match.group(1)))
            yield f"{doc.name}:{line}", yaml.safe_load(source)


def _dedent(block: str) -> list[str]:
    lines = block.splitlines()
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return [x[indent:] for x in lines]


def _is_command(data: Any) -> bool:
    return isinstance(data, dict) and "name" in data and ("steps" in data or "python" in data)


# Python commands in the docs need their module: tests/commands/test_docs.py runs that one.
DOC_COMMANDS = [(w, d) for w, d in _doc_blocks() if _is_command(d) and "python" not in d]
DOC_FRAGMENTS = [
    (where, data)
    for where, data in _doc_blocks()
    if not _is_command(data) and (isinstance(data, list) or set(data) == {"params"})
]
FILES = sorted(EXAMPLES.glob("*.yaml"))


def _instance(schema: dict[str, Any]) -> Any:
    """A small value that satisfies `schema` (what a model would answer)."""
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _instance(props[k]) for k in schema.get("required", list(props))}
    return {"string": "example", "boolean": True, "integer": 1, "number": 1.5, "array": []}.get(
        str(kind)
    )


def _issue_titles(github: FakeGitHub, number: int) -> list[str]:
    titles = []
    for repo in REPOS:
        try:
            titles.append(github.issue(repo, number)["title"])
        except KeyError:
            continue
    return titles


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[FakeGitHub, FakeOpenAI, Integrations]]:
    token, key = "ghp_" + uuid.uuid4().hex, "sk-test-" + uuid.uuid4().hex
    with FakeGitHub(repos=REPOS) as github, FakeOpenAI(api_key=key) as openai:
        github.add_token(token)
        blocks: list[Any] = [
            GitHubCredentials(account=a, token=token, base_url=github.url) for a in GITHUB_ACCOUNTS
        ]
        blocks += [
            OpenAICredentials(account=a, api_key=key, base_url=openai.base_url)
            for a in OPENAI_ACCOUNTS
        ]
        yield (
            github,
            openai,
            Integrations.with_credentials(*blocks, prefect_rate_limits=False, redis_url=""),
        )


async def _run(
    spec: CommandSpec,
    page: Any,
    ctx: CommandContext,
    services: tuple[FakeGitHub, FakeOpenAI, Integrations],
    **given: Any,
) -> dict[str, Any]:
    github, openai, integrations = services
    for step in spec.steps:
        if isinstance(step, OpenAIStep) and "schema" in step.args:
            openai.answer(json.dumps(_instance(step.args["schema"])))
    ctx.integrations = integrations
    ctx.profile = {"name": "demo-alice"}

    async def secrets(name: str) -> str:  # a Secret block per name, as `secret set` stores
        return f"pw-{name}"

    ctx.secret_loader = secrets
    with serve_site() as site:
        params = {"base_url": site.url}
        for name, param in spec.params.items():
            if name in given:
                params[name] = given[name]
            elif name != "base_url" and param.is_required:
                assert name in VALUES, f"give the example's parameter {name!r} a value in VALUES"
                params[name] = VALUES[name]
        ctx.params = {k: v for k, v in params.items() if k in spec.params}
        result = await run_command_steps(page, spec, ctx)
    ids = {step.id for step in spec.steps if step.id}
    assert ids <= set(result.outputs), f"steps without outputs: {ids - set(result.outputs)}"
    for step in spec.steps:  # every issue a step filed is there, on the fake GitHub
        if isinstance(step, GitHubStep) and step.action == "github.create_issue" and step.id:
            filed = result.outputs[step.id]
            assert filed["title"] in _issue_titles(github, filed["number"]), filed
    return dict(result.outputs)


@pytest.mark.browser
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
async def test_every_shipped_command_runs(
    path: Path,
    page: Any,
    ctx: CommandContext,
    services: tuple[FakeGitHub, FakeOpenAI, Integrations],
) -> None:
    outputs = await _run(read_command_file(path), page, ctx, services)
    assert outputs or path.name == "warm-up.yaml"


@pytest.mark.browser
@pytest.mark.parametrize("where, data", DOC_COMMANDS, ids=[w for w, _ in DOC_COMMANDS])
async def test_every_command_in_the_docs_runs(
    where: str,
    data: Any,
    page: Any,
    ctx: CommandContext,
    services: tuple[FakeGitHub, FakeOpenAI, Integrations],
) -> None:
    await _run(parse_command(data, where=where), page, ctx, services)


@pytest.mark.parametrize("where, data", DOC_FRAGMENTS, ids=[w for w, _ in DOC_FRAGMENTS])
def test_every_step_and_params_snippet_in_the_docs_parses(where: str, data: Any) -> None:
    if isinstance(data, list):
        for step in data:  # one at a time: a snippet lists alternatives, not a sequence
            parse_command({"name": "snippet", "version": "1", "steps": [step]}, where=where)
    else:
        snippet = {"name": "snippet", "version": "1", "steps": [{"sleep": 0}], **data}
        spec = parse_command(snippet, where=where)
        assert spec.params


def test_the_docs_have_runnable_examples() -> None:
    assert len(DOC_COMMANDS) >= 3 and DOC_FRAGMENTS and len(FILES) == 3


async def test_demo_command_on_the_demo_site(
    page: Any, ctx: CommandContext, services: tuple[FakeGitHub, FakeOpenAI, Integrations]
) -> None:
    outputs = await _run(
        read_command_file(EXAMPLES / "demo.yaml"), page, ctx, services, color="blue"
    )
    assert outputs["greeting"]["text"] == "Signed in as demo-alice"
    assert outputs["products"]["count"] == len(PRODUCTS)
    assert outputs["products"]["rows"][0] == dict(
        zip(("id", "name", "price"), PRODUCTS[0], strict=True)
    )
    assert outputs["summary"]["text"] == "Name: demo-alice; colour: blue"
    assert (ctx.artifacts_dir / "demo-summary.png").is_file()


async def test_products_report_files_the_models_summary_as_an_issue(
    page: Any, ctx: CommandContext, services: tuple[FakeGitHub, FakeOpenAI, Integrations]
) -> None:
    github, _openai, _ = services
    outputs = await _run(read_command_file(EXAMPLES / "products-report.yaml"), page, ctx, services)
    assert outputs["summary"]["json"] == {"summary": "example"}
    issue = github.issue("acme/reports", outputs["issue"]["number"])
    assert issue["title"] == f"Products report ({len(PRODUCTS)} products)"
    assert issue["body"] == "example"
    assert [label["name"] for label in issue["labels"]] == ["report"]
