"""The worked codegen example in docs/commands.md really runs as a Python command."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetwright.commands import CommandContext, parse_command, run_steps
from fleetwright.testing.site import PRODUCTS, serve_site

DOCS = Path(__file__).resolve().parents[2] / "docs" / "commands.md"
MARKER = "<!-- example: codegen-command"


def _example_source() -> str:
    text = DOCS.read_text(encoding="utf-8")
    after = text[text.index(MARKER) :]
    match = re.search(r"```python\n(.*?)```", after, re.S)
    assert match, "the codegen example block follows its marker"
    return match.group(1)


@pytest.mark.browser
async def test_codegen_example_runs(
    page: Any, ctx: CommandContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"fw_docs_login_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(_example_source())
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = parse_command(
        yaml.safe_load(
            f"""
name: demo-login
version: "1"
params:
  base_url: {{type: str}}
  password: {{type: secret, default: "site-{{{{ profile.name }}}}"}}
python: "{module}:run"
"""
        )
    )
    ctx.profile = {"name": "erin"}

    async def loader(name: str) -> str:
        assert name == "site-erin"
        return "erin-pw"

    ctx.secret_loader = loader
    with serve_site() as site:
        ctx.params = {"base_url": site.url}
        result = await run_steps(page, spec, ctx)
        assert site.logins["erin"] == hashlib.sha256(b"erin-pw").hexdigest()
    assert result.outputs["run"] == {"user": "erin", "products": [p[1] for p in PRODUCTS]}
    assert (ctx.artifacts_dir / "products.png").is_file()
