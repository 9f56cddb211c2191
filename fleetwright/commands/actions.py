"""What each step kind does on a Playwright page. Steps arrive rendered (templates applied)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from playwright.async_api import Locator, Page

from fleetwright.commands import models as m
from fleetwright.commands.context import CommandContext
from fleetwright.errors import AssertionStepError, ConfigurationError, StepError
from fleetwright.settings import get_settings

__all__ = ["StepEnv", "execute", "seconds_text"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_POLL = timedelta(milliseconds=100)


@dataclass
class StepEnv:
    """Where a step runs: its position, label, timeout, the run's context and artifacts."""

    index: int
    label: str
    timeout: timedelta
    ctx: CommandContext
    artifacts: list[Path]

    @property
    def ms(self) -> float:
        return self.timeout.total_seconds() * 1000


def seconds_text(value: timedelta) -> str:
    """`5s`, `0.5s`: a duration as messages show it."""
    return f"{value.total_seconds():g}s"


def _first(page: Page, selector: str) -> Locator:
    return page.locator(selector).first


def _artifact_path(env: StepEnv, name: str, what: str) -> Path:
    if not name or Path(name).name != name or name.startswith(".") or ".." in name:
        raise StepError(
            f"{env.label}: {what} {name!r} must be a plain file name; it is saved in the "
            "run's artifacts folder"
        )
    env.ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
    return env.ctx.artifacts_dir / name


async def _goto(page: Page, step: m.GotoStep, env: StepEnv) -> dict[str, Any]:
    response = await page.goto(step.url, wait_until=step.wait_until, timeout=env.ms)
    return {"url": page.url, "status": response.status if response is not None else None}


async def _click(page: Page, step: m.ClickStep, env: StepEnv) -> None:
    await _first(page, step.selector).click(
        button=step.button, click_count=step.click_count, timeout=env.ms
    )


async def _fill(page: Page, step: m.FillStep, env: StepEnv) -> None:
    await _first(page, step.selector).fill(step.value, timeout=env.ms)


async def _press(page: Page, step: m.PressStep, env: StepEnv) -> None:
    if step.selector:
        await _first(page, step.selector).press(step.key, timeout=env.ms)
    else:
        await page.keyboard.press(step.key)


async def _select(page: Page, step: m.SelectStep, env: StepEnv) -> dict[str, Any]:
    selected = await _first(page, step.selector).select_option(
        value=step.value, label=step.label, timeout=env.ms
    )
    return {"selected": selected}


async def _check(page: Page, step: m.CheckStep, env: StepEnv) -> None:
    await _first(page, step.selector).set_checked(step.checked, timeout=env.ms)


async def _hover(page: Page, step: m.HoverStep, env: StepEnv) -> None:
    await _first(page, step.selector).hover(timeout=env.ms)


async def _wait_for(page: Page, step: m.WaitForStep, env: StepEnv) -> None:
    if step.selector is not None:
        await _first(page, step.selector).wait_for(state=step.state, timeout=env.ms)
    elif step.url is not None:
        await page.wait_for_url(step.url, timeout=env.ms)
    elif step.load_state is not None:
        await page.wait_for_load_state(step.load_state, timeout=env.ms)


_TABLE_JS = """(el) => {
  const table = el.tagName === 'TABLE' ? el : el.querySelector('table');
  if (!table) return null;
  const text = (c) => c.innerText.trim();
  let headers = Array.from(table.querySelectorAll(':scope > thead th')).map(text);
  let rows = Array.from(table.rows).filter(
    (r) => !['THEAD', 'TFOOT'].includes(r.parentElement.tagName));
  if (!headers.length && rows.length && rows[0].querySelectorAll('td').length === 0) {
    headers = Array.from(rows[0].cells).map(text);
    rows = rows.slice(1);
  }
  return {headers, rows: rows.map((r) => Array.from(r.cells).map(text))};
}"""


async def _extract(page: Page, step: m.ExtractStep, env: StepEnv) -> dict[str, Any]:
    loc = page.locator(step.selector)
    if step.kind == "list" and not step.allow_empty:  # the others wait for their element
        await loc.first.wait_for(state="attached", timeout=env.ms)
    if step.kind == "text":
        text = (await loc.first.inner_text(timeout=env.ms)).strip()
        return {"text": text, "value": text}
    if step.kind == "attribute":
        value = await loc.first.get_attribute(step.attribute or "", timeout=env.ms)
        return {"value": value}
    if step.kind == "list":
        if step.attribute:
            items = await loc.evaluate_all(
                "(els, name) => els.map((e) => e.getAttribute(name))", step.attribute
            )
        else:
            items = [t.strip() for t in await loc.all_inner_texts()]
        return {"items": items, "count": len(items), "value": items}
    table = await loc.first.evaluate(_TABLE_JS, timeout=env.ms)
    if table is None:
        raise StepError(f"{env.label}: {step.selector!r} is not a table and holds no table")
    headers = list(table["headers"])
    width = max([len(headers)] + [len(r) for r in table["rows"]])
    headers += [f"col{i + 1}" for i in range(len(headers), width)]
    rows = [dict(zip(headers, cells, strict=False)) for cells in table["rows"] if cells]
    return {"headers": headers, "rows": rows, "count": len(rows), "value": rows}


async def _screenshot(page: Page, step: m.ScreenshotStep, env: StepEnv) -> dict[str, Any]:
    name = step.path or f"step-{env.index + 1:02d}-{step.id or 'screenshot'}.png"
    if not name.lower().endswith(_IMAGE_SUFFIXES):
        name += ".png"
    path = _artifact_path(env, name, "screenshot path")
    kind: Literal["jpeg", "png"] = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "png"
    if step.selector:
        await _first(page, step.selector).screenshot(path=path, type=kind, timeout=env.ms)
    else:
        await page.screenshot(path=path, type=kind, full_page=step.full_page, timeout=env.ms)
    env.artifacts.append(path)
    return {"path": str(path)}


async def _evaluate(page: Page, step: m.EvaluateStep, env: StepEnv) -> dict[str, Any]:
    value = await asyncio.wait_for(
        page.evaluate(step.expression, step.arg), env.timeout.total_seconds()
    )
    return {"value": value}


async def _poll(
    page: Page, env: StepEnv, probe: Callable[[], Awaitable[tuple[bool, Any]]]
) -> tuple[bool, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + env.timeout.total_seconds()
    while True:
        ok, actual = await probe()
        if ok or loop.time() >= deadline:
            return ok, actual
        await page.wait_for_timeout(_POLL.total_seconds() * 1000)


def _match(actual: str, *, contains: str | None, equals: str | None, matches: str | None) -> bool:
    if contains is not None:
        return contains in actual
    if equals is not None:
        return actual.strip() == equals.strip()
    return re.search(matches or "", actual) is not None


def _describe(*, contains: str | None, equals: str | None, matches: str | None) -> str:
    if contains is not None:
        return f"contain {contains!r}"
    if equals is not None:
        return f"equal {equals!r}"
    return f"match /{matches}/"


async def _assert(page: Page, step: m.AssertStep, env: StepEnv) -> None:
    expected: Any
    if step.text is not None:
        t = step.text
        crit = {"contains": t.contains, "equals": t.equals, "matches": t.matches}

        async def probe() -> tuple[bool, Any]:
            loc = page.locator(t.selector)
            if await loc.count() == 0:
                return False, None
            text = await loc.first.inner_text(timeout=env.ms)
            return _match(text, **crit), text

        what = f"text of {t.selector!r} should {_describe(**crit)}"
        expected = t.contains or t.equals or t.matches
    elif step.url is not None:
        u = step.url
        crit = {"contains": u.contains, "equals": u.equals, "matches": u.matches}

        async def probe() -> tuple[bool, Any]:
            return _match(page.url, **crit), page.url

        what = f"URL should {_describe(**crit)}"
        expected = u.contains or u.equals or u.matches
    elif step.visible is not None:
        v = step.visible

        async def probe() -> tuple[bool, Any]:
            shown = await page.locator(v.selector).first.is_visible()
            return shown == v.visible, shown

        what = f"{v.selector!r} should be {'visible' if v.visible else 'hidden'}"
        expected = v.visible
    else:
        c = step.count
        assert c is not None

        async def probe() -> tuple[bool, Any]:
            n = await page.locator(c.selector).count()
            ok = (
                n == c.equals
                if c.equals is not None
                else (c.min is None or n >= c.min) and (c.max is None or n <= c.max)
            )
            return ok, n

        bounds = (
            f"be {c.equals}"
            if c.equals is not None
            else " and ".join(
                s
                for s in (
                    f"be ≥ {c.min}" if c.min is not None else "",
                    f"be ≤ {c.max}" if c.max is not None else "",
                )
                if s
            )
        )
        what = f"count of {c.selector!r} should {bounds}"
        expected = c.equals if c.equals is not None else {"min": c.min, "max": c.max}
    ok, actual = await _poll(page, env, probe)
    if not ok:
        if step.text is not None and actual is None:
            shown = f"no element matched {step.text.selector!r}"
        elif step.visible is not None:
            shown = "it was visible" if actual else "it was not visible"
        else:
            text = repr(actual)
            shown = f"was {text if len(text) <= 200 else text[:197] + '...'}"
        err = AssertionStepError(
            f"{env.label}: {what}, but {shown} (waited {seconds_text(env.timeout)})"
        )
        err.expected = expected  # type: ignore[attr-defined]
        err.actual = actual  # type: ignore[attr-defined]
        raise err


async def _download(page: Page, step: m.DownloadStep, env: StepEnv) -> dict[str, Any]:
    async with page.expect_download(timeout=env.ms) as info:
        await _first(page, step.selector).click(timeout=env.ms)
    download = await info.value
    name = step.save_as or Path(download.suggested_filename).name or f"download-{env.index + 1}"
    path = _artifact_path(env, name, "download name")
    await download.save_as(path)
    failure = await download.failure()
    if failure:
        raise StepError(f"{env.label}: the download failed: {failure}")
    env.artifacts.append(path)
    return {"path": str(path), "filename": path.name, "size": path.stat().st_size}


def _upload_paths(step: m.UploadStep, env: StepEnv) -> list[Path]:
    """The files to upload, each inside an allowed folder once links are followed: a command
    (or a parameter a webhook filled in) must not send any file the worker can read."""
    folders = get_settings().upload_folders
    if env.ctx.base_dir is not None:
        folders = [env.ctx.base_dir, *folders]
    allowed = [f.resolve() for f in folders]
    names = [step.files] if isinstance(step.files, str) else step.files
    paths = []
    for name in map(Path, names):
        path = (name if name.is_absolute() else folders[0] / name).resolve()
        if not any(path.is_relative_to(folder) for folder in allowed):
            shown = ", ".join(str(f) for f in allowed)
            raise StepError(
                f"{env.label}: {name} is outside the upload folders ({shown}); copy the file "
                "into one, or add its folder to FLEETWRIGHT_UPLOAD_DIRS"
            )
        if not path.is_file():
            raise StepError(f"{env.label}: file to upload not found: {path}")
        paths.append(path)
    return paths


async def _upload(page: Page, step: m.UploadStep, env: StepEnv) -> None:
    paths = _upload_paths(step, env)
    await _first(page, step.selector).set_input_files(paths, timeout=env.ms)


async def _scroll(page: Page, step: m.ScrollStep, env: StepEnv) -> None:
    if step.selector is not None:
        await _first(page, step.selector).scroll_into_view_if_needed(timeout=env.ms)
    elif step.to == "top":
        await page.evaluate("() => window.scrollTo(0, 0)")
    elif step.to == "bottom":
        await page.evaluate("() => window.scrollTo(0, document.scrollingElement.scrollHeight)")
    else:
        await page.evaluate("(dy) => window.scrollBy(0, dy)", step.by)


async def _sleep(page: Page, step: m.SleepStep, env: StepEnv) -> None:
    await page.wait_for_timeout(step.seconds.total_seconds() * 1000)


def _as_output(env: StepEnv, value: Any, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StepError(
            f"{env.label}: {source} returned a {type(value).__name__}; it must return a dict "
            "(or None)"
        )
    return dict(value)


async def _bounded(step: m.StepBase, awaitable: Awaitable[Any]) -> Any:
    if step.timeout is None:
        return await awaitable
    return await asyncio.wait_for(awaitable, step.timeout.total_seconds())


async def _integration(page: Page, step: m.StepBase, env: StepEnv) -> dict[str, Any]:
    integrations = env.ctx.integrations
    if integrations is None:
        raise ConfigurationError(
            f"{env.label}: no integrations were given to the runner, so "
            f"{step.action_name} cannot run; run the command through the run-command flow "
            "or pass CommandContext(integrations=...)"
        )
    args = dict(getattr(step, "args", {}))
    result = await _bounded(step, integrations.call(step.action_name, args))
    return _as_output(env, result, step.action_name)


async def _python(page: Page, step: m.PythonStep, env: StepEnv) -> dict[str, Any]:
    from fleetwright.commands.plugins import resolve_python_command

    fn = resolve_python_command(step.function)
    result = await _bounded(step, fn(page, env.ctx))
    return _as_output(env, result, f"python command {step.function!r}")


_Action = Callable[[Page, Any, StepEnv], Awaitable[dict[str, Any] | None]]
_ACTIONS: dict[str, _Action] = {
    "goto": _goto,
    "click": _click,
    "fill": _fill,
    "press": _press,
    "select": _select,
    "check": _check,
    "hover": _hover,
    "wait_for": _wait_for,
    "extract": _extract,
    "screenshot": _screenshot,
    "evaluate": _evaluate,
    "assert": _assert,
    "download": _download,
    "upload": _upload,
    "scroll": _scroll,
    "sleep": _sleep,
    "python": _python,
    **{a: _integration for a in m.INTEGRATION_ACTIONS},
}


async def execute(page: Page, step: m.StepBase, env: StepEnv) -> dict[str, Any]:
    """Run one rendered step; its outputs (empty when it has none)."""
    out = await _ACTIONS[step.action_name](page, step, env)
    return out or {}
