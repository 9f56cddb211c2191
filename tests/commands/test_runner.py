"""The runner on real Chromium and real local pages: every step kind, and every failure."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetwright.commands import CommandContext, CommandSpec, run_steps
from fleetwright.errors import (
    AssertionStepError,
    BrowserCrashError,
    ConfigurationError,
    NavigationTimeoutError,
    ServiceUnavailableError,
    StepError,
    TemplateError,
    ValidationError,
)

pytestmark = pytest.mark.browser
Cmd = Callable[[str], CommandSpec]


class RecordingIntegrations:
    """A tiny stand-in for the caller's integrations: records calls, answers from a table."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers = answers or {}

    async def call(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((kind, args))
        answer = self.answers.get(kind, {"ok": True})
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]


async def test_login_flow_with_templates(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        """
name: login
version: "1"
params:
  base_url: {type: str}
  password: {type: str}
steps:
  - goto: "{{ params.base_url }}/login"
    id: open
  - fill: {selector: "#user", value: "{{ profile.name }}"}
  - fill: {selector: "#password", value: "{{ params.password }}"}
  - click: "button[type=submit]"
  - wait_for: {url: "**/account*"}
  - extract: {id: greeting, selector: "#greeting", kind: text}
  - assert: {text: {selector: "#greeting", contains: "Signed in as alice"}}
  - assert: {url: {contains: "/account"}}
  - evaluate: {expression: "(s) => s.toUpperCase()", arg: "{{ steps.greeting.text }}", id: shout}
"""
    )
    ctx.params = {"base_url": site, "password": "hunter2"}
    result = await run_steps(page, spec, ctx)
    assert result.ok
    assert result.outputs["open"] == {"url": f"{site}/login", "status": 200}
    assert result.outputs["greeting"] == {
        "text": "Signed in as alice",
        "value": "Signed in as alice",
    }
    assert result.outputs["shout"] == {"value": "SIGNED IN AS ALICE"}
    assert [s.status for s in result.steps] == ["ok"] * 9


async def test_widgets_every_interaction(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.txt").write_text("hi")
    spec = cmd(
        f"""
name: widgets
version: "1"
steps:
  - goto: "{site}/widgets"
  - select: {{selector: "#color", value: g}}
    id: picked
  - select: {{selector: "#color", label: Red}}
    id: picked_label
  - check: "#agree"
  - evaluate: "() => document.querySelector('#agree').checked"
    id: agreed
  - check: {{selector: "#agree", checked: false}}
  - evaluate: "() => document.querySelector('#agree').checked"
    id: unagreed
  - hover: "#hover-target"
  - assert: {{visible: "#tip"}}
  - press: {{selector: "#key", key: "Enter"}}
  - press: {{key: "x"}}
  - assert: {{text: {{selector: "#last-key", equals: "x"}}}}
  - upload: {{selector: "#upload", files: [a.txt, "{tmp_path / "b.txt"}"]}}
  - assert: {{text: {{selector: "#uploaded", matches: "^a.txt:5,b.txt:2$"}}}}
  - wait_for: "#late"
  - wait_for: {{selector: "#hidden", state: hidden}}
  - wait_for: {{load_state: domcontentloaded}}
  - scroll: bottom
  - evaluate: "() => window.scrollY > 1000"
    id: at_bottom
  - scroll: top
  - scroll: {{by: 250}}
  - evaluate: "() => window.scrollY"
    id: by
  - scroll: "#bottom"
  - sleep: 0.05
  - assert: {{count: {{selector: "#items li", equals: 3}}}}
  - assert: {{count: {{selector: "#items li", min: 2, max: 3}}}}
  - assert: {{visible: {{selector: "#hidden", visible: false}}}}
"""
    )
    result = await run_steps(page, spec, ctx)
    assert result.outputs["picked"] == {"selected": ["g"]}
    assert result.outputs["picked_label"] == {"selected": ["r"]}
    assert result.outputs["agreed"] == {"value": True}
    assert result.outputs["unagreed"] == {"value": False}
    assert result.outputs["at_bottom"] == {"value": True}
    assert result.outputs["by"] == {"value": 250}
    assert await page.evaluate("() => window.scrollY") > 1000


async def test_extract_kinds(page: Any, ctx: CommandContext, site: str, cmd: Cmd) -> None:
    spec = cmd(
        f"""
name: extract
version: "1"
steps:
  - goto: "{site}/table"
  - extract: {{id: products, selector: "#products", kind: table}}
  - extract: {{id: bare, selector: "#bare", kind: table}}
  - goto: "{site}/widgets"
  - extract: {{id: names, selector: "#items li", kind: list}}
  - extract: {{id: skus, selector: "#items li", kind: list, attribute: data-sku}}
  - extract: {{id: first_sku, selector: "#items li", kind: attribute, attribute: data-sku}}
  - extract: {{id: none, selector: ".nothing", kind: list, allow_empty: true}}
  - fill: {{selector: "#key", value: "{{{{ steps.products.rows.1.Name }}}}"}}
  - evaluate: {{expression: "() => document.querySelector('#key').value", id: typed}}
"""
    )
    result = await run_steps(page, spec, ctx)
    out = result.outputs
    assert out["products"]["headers"] == ["Name", "Price"]
    assert out["products"]["rows"] == [
        {"Name": "Widget", "Price": "9.99"},
        {"Name": "Gadget", "Price": "19.50"},
    ]
    assert out["products"]["count"] == 2
    assert out["bare"]["rows"] == [{"col1": "a", "col2": "b"}, {"col1": "c", "col2": "d"}]
    assert out["names"] == {
        "items": ["Apple", "Banana", "Cherry"],
        "count": 3,
        "value": ["Apple", "Banana", "Cherry"],
    }
    assert out["skus"]["items"] == ["a1", "b2", "c3"]
    assert out["first_sku"] == {"value": "a1"}
    assert out["none"]["items"] == []
    assert out["typed"] == {"value": "Gadget"}


async def test_screenshot_and_download_go_to_artifacts(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: files
version: "1"
steps:
  - goto: "{site}/widgets"
  - screenshot: {{id: shot, path: "{{{{ profile.name }}}}-page.png", full_page: true}}
  - screenshot: {{id: element, selector: "#items", path: items.jpg}}
  - screenshot:
  - download: "#dl"
    id: file
  - download: {{selector: "#dl", save_as: renamed.csv}}
"""
    )
    result = await run_steps(page, spec, ctx)
    shot = Path(result.outputs["shot"]["path"])
    assert shot == ctx.artifacts_dir / "alice-page.png"
    assert shot.read_bytes().startswith(b"\x89PNG")
    element = Path(result.outputs["element"]["path"])
    assert element.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG
    assert (ctx.artifacts_dir / "step-04-screenshot.png").is_file()
    download = result.outputs["file"]
    assert download["filename"] == "report.csv"
    assert Path(download["path"]).read_text() == "id,name\n1,widget\n"
    assert download["size"] == len("id,name\n1,widget\n")
    assert (ctx.artifacts_dir / "renamed.csv").is_file()
    assert sorted(p.name for p in result.artifacts) == sorted(
        ["alice-page.png", "items.jpg", "step-04-screenshot.png", "report.csv", "renamed.csv"]
    )


async def test_screenshot_path_must_stay_in_artifacts(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: escape
version: "1"
params: {{where: {{type: str}}}}
steps:
  - goto: "{site}/widgets"
  - screenshot: "{{{{ params.where }}}}"
"""
    )
    ctx.params = {"where": "../../etc/evil.png"}
    with pytest.raises(StepError, match=r"step 2 \(screenshot\): .*must be a plain file name"):
        await run_steps(page, spec, ctx)
    assert not (ctx.artifacts_dir.parent.parent / "etc").exists()


@pytest.mark.parametrize("where", ["/etc/hostname", "../outside.txt", "link.txt"])
async def test_uploads_stay_in_the_upload_folders(
    page: Any,
    ctx: CommandContext,
    site: str,
    cmd: Cmd,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    from fleetwright.settings import reset_settings

    base = tmp_path / "base"
    base.mkdir()
    (tmp_path / "outside.txt").write_text("secret")
    (base / "link.txt").symlink_to(tmp_path / "outside.txt")  # a link out of the folder
    ctx.base_dir = base
    monkeypatch.setenv("FLEETWRIGHT_UPLOAD_DIRS", str(tmp_path / "uploads"))
    reset_settings()
    spec = cmd(
        f"""
name: upload-escape
version: "1"
params: {{where: {{type: str}}}}
steps:
  - goto: "{site}/widgets"
  - upload: {{selector: "#upload", files: "{{{{ params.where }}}}"}}
"""
    )
    ctx.params = {"where": where}
    with pytest.raises(StepError, match=r"step 2 \(upload\): .* is outside the upload folders"):
        await run_steps(page, spec, ctx)
    # the operator's folders are allowed as well as the caller's base_dir
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "ok.txt").write_text("fine")
    ctx.params = {"where": str(tmp_path / "uploads" / "ok.txt")}
    assert (await run_steps(page, spec, ctx)).ok
    reset_settings()


async def test_missing_selector_is_step_error_with_screenshot(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: nope
version: "1"
steps:
  - goto: "{site}/widgets"
  - extract: {{id: t, selector: "#items li", kind: text}}
  - click: {{selector: "#nope", timeout: 0.5}}
    id: press_it
  - fill: {{selector: "#key", value: never}}
"""
    )
    with pytest.raises(StepError) as info:
        await run_steps(page, spec, ctx)
    err = info.value
    assert str(err) == "step 3 (click): selector '#nope' did not appear within 0.5s"
    assert not err.retryable
    assert (err.step_index, err.step_id, err.step_action) == (2, "press_it", "click")  # type: ignore[attr-defined]
    assert err.screenshot == ctx.artifacts_dir / "failure-step-03.png"  # type: ignore[attr-defined]
    assert err.screenshot.read_bytes().startswith(b"\x89PNG")  # type: ignore[attr-defined]
    partial = err.result  # type: ignore[attr-defined]
    assert partial.ok is False
    assert partial.outputs == {"t": {"text": "Apple", "value": "Apple"}}
    assert [s.status for s in partial.steps] == ["ok", "ok", "failed"]
    assert await page.locator("#key").input_value() == ""


async def test_present_but_disabled_element_says_not_ready(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: disabled
version: "1"
steps:
  - goto: "{site}/widgets"
  - click: {{selector: "#disabled", timeout: 0.5}}
"""
    )
    with pytest.raises(StepError, match=r"'#disabled' matched, but the element was not ready"):
        await run_steps(page, spec, ctx)


async def test_navigation_timeout_is_retryable(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: slow
version: "1"
steps:
  - goto: {{url: "{site}/slow", timeout: 0.5}}
"""
    )
    with pytest.raises(NavigationTimeoutError, match=r"/slow did not load within 0.5s") as info:
        await run_steps(page, spec, ctx)
    assert info.value.retryable


async def test_unreachable_url_is_a_step_error(page: Any, ctx: CommandContext, cmd: Cmd) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = cmd(
        f"""
name: closed-port
version: "1"
steps:
  - goto: "http://user:{{{{ params.pw }}}}@127.0.0.1:{port}/"
params: {{pw: {{type: str}}}}
"""
    )
    ctx.params = {"pw": "pa55word"}
    with pytest.raises(StepError, match=r"could not load .* \(ERR_CONNECTION_REFUSED\)") as info:
        await run_steps(page, spec, ctx)
    assert info.value.retryable
    assert "pa55word" not in str(info.value) and "user:***@" in str(info.value)


async def test_failing_assert_carries_expected_and_actual(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: assert
version: "1"
steps:
  - goto: "{site}/account?user=bob"
  - assert: {{text: {{selector: "#greeting", contains: "alice"}}, timeout: 0.3}}
"""
    )
    with pytest.raises(AssertionStepError) as info:
        await run_steps(page, spec, ctx)
    err = info.value
    assert str(err).startswith("step 2 (assert): text of '#greeting' should contain 'alice', but")
    assert err.expected == "alice"  # type: ignore[attr-defined]
    assert err.actual == "Signed in as bob"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ('{url: {equals: "http://elsewhere/"}}', "URL should equal 'http://elsewhere/'"),
        ('{count: {selector: "li", equals: 2}}', "count of 'li' should be 2, but was 3"),
        ('{visible: "#hidden"}', "'#hidden' should be visible, but it was not visible"),
        (
            '{text: {selector: "#missing", equals: "x"}}',
            "no element matched '#missing'",
        ),
    ],
)
async def test_assert_kinds_fail_clearly(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd, check: str, message: str
) -> None:
    spec = cmd(
        f"""
name: asserts
version: "1"
steps:
  - goto: "{site}/widgets"
  - assert: {check}
    timeout: 0.2
"""
    )
    with pytest.raises(AssertionStepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await run_steps(page, spec, ctx)


async def test_optional_step_failure_continues(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: optional
version: "1"
steps:
  - goto: "{site}/widgets"
  - click: {{selector: "#cookie-banner", timeout: 0.2, optional: true}}
  - click: "#nothing-either"
    timeout: 0.2
    continue_on_error: true
  - extract: {{id: first, selector: "#items li"}}
"""
    )
    result = await run_steps(page, spec, ctx)
    assert [s.status for s in result.steps] == ["ok", "failed", "failed", "ok"]
    assert "did not appear" in (result.steps[1].error or "")
    assert result.outputs["first"]["text"] == "Apple"


async def test_unknown_output_at_run_time(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: runtime-template
version: "1"
steps:
  - goto: "{site}/widgets"
  - evaluate: {{expression: "() => ({{a: 1}})", id: obj}}
  - fill: {{selector: "#key", value: "{{{{ steps.obj.value.b }}}}"}}
"""
    )
    with pytest.raises(
        TemplateError,
        match=r"step 3 \(fill\): template '\{\{ steps.obj.value.b \}\}': "
        r"'b' is not in steps.obj.value \(has: a\)",
    ):
        await run_steps(page, spec, ctx)


async def test_bad_params_fail_before_any_step(page: Any, ctx: CommandContext, cmd: Cmd) -> None:
    spec = cmd(
        """
name: p
version: "1"
params: {count: {type: int}}
steps:
  - goto: "about:blank"
"""
    )
    ctx.params = {"count": "many"}
    with pytest.raises(ValidationError, match="command 'p': parameter 'count': expected int"):
        await run_steps(page, spec, ctx)
    assert page.url == "about:blank"


async def test_integration_steps_call_the_hook(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    hook = RecordingIntegrations(
        {
            "openai.respond": {"json": {"label": "bug"}, "text": '{"label": "bug"}'},
            "github.create_issue": {"number": 42, "url": "https://github.test/o/r/issues/42"},
        }
    )
    ctx.integrations = hook
    spec = cmd(
        f"""
name: triage
version: "1"
params:
  repo: {{type: str, default: "o/r"}}
  labels: {{type: list, default: [triage]}}
steps:
  - goto: "{site}/account?user=carol"
  - extract: {{id: greeting, selector: "#greeting"}}
  - openai.respond:
      account: ai
      prompt: "Classify: {{{{ steps.greeting.text }}}}"
      schema: {{type: object, properties: {{label: {{type: string}}}}}}
    id: label
  - github.create_issue:
      id: issue
      account: ops
      repo: "{{{{ params.repo }}}}"
      title: "{{{{ steps.label.json.label }}}} for {{{{ profile.name }}}}"
      labels: "{{{{ params.labels }}}}"
  - github.comment:
      {{repo: o/r, issue: "{{{{ steps.issue.number }}}}", body: "run {{{{ run.id }}}}"}}
"""
    )
    result = await run_steps(page, spec, ctx)
    assert hook.calls == [
        (
            "openai.respond",
            {
                "account": "ai",
                "prompt": "Classify: Signed in as carol",
                "schema": {"type": "object", "properties": {"label": {"type": "string"}}},
            },
        ),
        (
            "github.create_issue",
            {"account": "ops", "repo": "o/r", "title": "bug for alice", "labels": ["triage"]},
        ),
        ("github.comment", {"repo": "o/r", "issue": 42, "body": "run 7"}),
    ]
    assert result.outputs["issue"]["number"] == 42


async def test_integration_step_without_hook_is_configuration_error(
    page: Any, ctx: CommandContext, cmd: Cmd
) -> None:
    spec = cmd(
        """
name: nohook
version: "1"
steps:
  - github.get_repo: {repo: o/r}
"""
    )
    with pytest.raises(ConfigurationError, match=r"step 1 \(github.get_repo\): no integrations"):
        await run_steps(page, spec, ctx)


async def test_integration_errors_keep_their_class(
    page: Any, ctx: CommandContext, cmd: Cmd
) -> None:
    ctx.integrations = RecordingIntegrations(
        {"github.get_repo": ServiceUnavailableError("GitHub answered 503")}
    )
    spec = cmd(
        """
name: flaky
version: "1"
steps:
  - github.get_repo: {repo: o/r, id: repo}
"""
    )
    with pytest.raises(ServiceUnavailableError) as info:
        await run_steps(page, spec, ctx)
    assert str(info.value) == "step 1 (github.get_repo): GitHub answered 503"
    assert info.value.retryable
    assert info.value.step_id == "repo"  # type: ignore[attr-defined]


async def test_integration_step_timeout(page: Any, ctx: CommandContext, cmd: Cmd) -> None:
    class Slow:
        async def call(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(5)
            return {}

    ctx.integrations = Slow()
    spec = cmd(
        """
name: slow-service
version: "1"
steps:
  - openai.respond: {prompt: hi, timeout: 0.2}
"""
    )
    with pytest.raises(StepError, match=r"step 1 \(openai.respond\): timed out after 0.2s"):
        await run_steps(page, spec, ctx)


async def test_page_crash_is_browser_crash_error(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: crash
version: "1"
steps:
  - goto: "{site}/widgets"
  - goto: "chrome://crash"
  - click: "#agree"
"""
    )
    with pytest.raises(
        BrowserCrashError, match=r"step 2 \(goto\): the page or browser crashed"
    ) as info:
        await run_steps(page, spec, ctx)
    assert info.value.retryable
    assert info.value.screenshot is None  # type: ignore[attr-defined]


async def test_page_closed_mid_step_is_browser_crash_error(
    browser: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    context = await browser.new_context()
    pg = await context.new_page()
    spec = cmd(
        f"""
name: closed
version: "1"
steps:
  - goto: "{site}/widgets"
  - wait_for: {{selector: "#never", timeout: 5}}
"""
    )
    task = asyncio.create_task(run_steps(pg, spec, ctx))
    await asyncio.sleep(0.5)
    await context.close()
    with pytest.raises(BrowserCrashError, match=r"step 2 \(wait_for\)") as info:
        await task
    assert info.value.step_index == 1  # type: ignore[attr-defined]


async def test_secret_params_are_not_in_errors(
    page: Any, ctx: CommandContext, site: str, cmd: Cmd
) -> None:
    spec = cmd(
        f"""
name: secret
version: "1"
params: {{password: {{type: str}}}}
steps:
  - goto: "{site}/login"
  - fill: {{selector: "#pw-missing", value: "{{{{ params.password }}}}", timeout: 0.3}}
"""
    )
    ctx.params = {"password": "s3cr3t-value"}
    with pytest.raises(StepError) as info:
        await run_steps(page, spec, ctx)
    assert "s3cr3t-value" not in str(info.value)
    assert "s3cr3t-value" not in repr(info.value.result)  # type: ignore[attr-defined]
