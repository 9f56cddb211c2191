"""The example commands in commands/ run against the real demo site."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from fleetwright.commands import CommandContext, read_command_file, run_steps
from fleetwright.testing.site import PRODUCTS, serve_site

pytestmark = pytest.mark.browser
EXAMPLES = Path(__file__).resolve().parents[2] / "commands"


class Integrations:
    """Answers like the integrations would, and records what the steps asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((kind, args))
        if kind == "openai.respond":
            return {"output": {"summary": "Five gadgets."}, "text": '{"summary": "Five gadgets."}'}
        return {"number": 1, "url": "https://github.test/o/r/issues/1"}


async def test_demo_command_on_the_demo_site(page: Any, ctx: CommandContext) -> None:
    spec = read_command_file(EXAMPLES / "demo.yaml")
    ctx.profile = {"name": "demo-alice"}
    stored = {"demo-site-demo-alice": "alice-pw"}

    async def loader(name: str) -> str:
        return stored[name]

    ctx.secret_loader = loader
    with serve_site() as site:
        ctx.params = {"base_url": site.url, "color": "blue"}
        result = await run_steps(page, spec, ctx)
    assert result.outputs["greeting"]["text"] == "Signed in as demo-alice"
    assert site.logins["demo-alice"] == hashlib.sha256(b"alice-pw").hexdigest()
    assert result.outputs["products"]["count"] == len(PRODUCTS)
    assert result.outputs["products"]["rows"][0] == dict(
        zip(("id", "name", "price"), PRODUCTS[0], strict=True)
    )
    assert result.outputs["summary"]["text"] == "Name: demo-alice; colour: blue"
    assert (ctx.artifacts_dir / "demo-summary.png").is_file()


async def test_products_report_calls_both_services(page: Any, ctx: CommandContext) -> None:
    spec = read_command_file(EXAMPLES / "products-report.yaml")
    hook = Integrations()
    ctx.integrations = hook
    with serve_site() as site:
        ctx.params = {"base_url": site.url, "repo": "acme/reports"}
        result = await run_steps(page, spec, ctx)
    (ai_kind, ai_args), (gh_kind, gh_args) = hook.calls
    assert ai_kind == "openai.respond" and ai_args["account"] == "ai"
    assert "Widget" in ai_args["prompt"]
    assert gh_kind == "github.create_issue"
    assert gh_args == {
        "account": "ops",
        "repo": "acme/reports",
        "title": f"Products report ({len(PRODUCTS)} products)",
        "body": "Five gadgets.",
        "labels": ["report"],
    }
    assert result.outputs["issue"]["number"] == 1
