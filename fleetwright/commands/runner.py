"""Run a command's steps in order on a Playwright page, mapping failures to Fleetwright errors.

Each failure raises one error from fleetwright.errors carrying `step_index` (0-based),
`step_id`, `step_action`, `result` (the partial CommandResult) and `screenshot` (a failure
screenshot's path, or None).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from fleetwright.browser.redaction import register_secrets
from fleetwright.commands import models as m
from fleetwright.commands.actions import StepEnv, execute, seconds_text
from fleetwright.commands.context import CommandContext, CommandResult, StepOutcome
from fleetwright.commands.params import validate_params
from fleetwright.commands.secrets import resolve_secret_params
from fleetwright.commands.templating import NON_TEMPLATED, render_value, step_label
from fleetwright.errors import (
    BrowserCrashError,
    FleetwrightError,
    NavigationTimeoutError,
    ProxyAuthError,
    ProxyError,
    StepError,
    redact_url,
)
from fleetwright.redaction import Scrubber

__all__ = ["render_step", "run_steps"]

logger = logging.getLogger(__name__)

_CRASH = re.compile(
    r"crash|has been closed|browser has disconnected|target closed|browser closed",
    re.IGNORECASE,
)
_NET = re.compile(r"net::(ERR_[A-Z_]+)")
_TRANSIENT_NET = frozenset(
    {
        "ERR_CONNECTION_REFUSED",
        "ERR_CONNECTION_RESET",
        "ERR_CONNECTION_CLOSED",
        "ERR_CONNECTION_TIMED_OUT",
        "ERR_TIMED_OUT",
        "ERR_EMPTY_RESPONSE",
        "ERR_NETWORK_CHANGED",
        "ERR_INTERNET_DISCONNECTED",
    }
)
_KEEP_TYPES = frozenset({"args", "arg"})


def render_step(step: m.StepBase, scope: dict[str, Any]) -> m.StepBase:
    """`step` with its templates filled from `scope` (steps, params, profile, run)."""
    data = step.model_dump()
    for key, value in data.items():
        if key not in NON_TEMPLATED:
            data[key] = render_value(value, scope, keep_types=key in _KEEP_TYPES)
    return type(step).model_validate(data)


def _scrubbed(value: Any, scrub: Scrubber) -> Any:
    """`value` with every string's secret values masked (outputs must not carry them)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v, scrub) for v in value]
    return value


def _scrub_outputs(outputs: dict[str, dict[str, Any]], scrub: Scrubber) -> None:
    for key, value in outputs.items():
        outputs[key] = _scrubbed(value, scrub)


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _selector(step: m.StepBase) -> str | None:
    sel = getattr(step, "selector", None)
    return sel if isinstance(sel, str) else None


async def _map_error(
    exc: BaseException, page: Page, step: m.StepBase, env: StepEnv, crashed: bool
) -> FleetwrightError:
    """The Fleetwright error for `exc`, its message naming the step; URL passwords hidden."""
    err = await _classify(exc, page, step, env, crashed)
    err.args = (redact_url(err.message), *err.args[1:])
    return err


async def _classify(
    exc: BaseException, page: Page, step: m.StepBase, env: StepEnv, crashed: bool
) -> FleetwrightError:
    label, within = env.label, seconds_text(env.timeout)
    if isinstance(exc, FleetwrightError):
        if not exc.message.startswith(label):
            exc.args = (f"{label}: {exc.message}", *exc.args[1:])
        return exc
    text = str(getattr(exc, "message", "") or exc)
    if (
        crashed
        or page.is_closed()
        or (
            isinstance(exc, PlaywrightError)
            and not isinstance(exc, PlaywrightTimeoutError)
            and _CRASH.search(text)
        )
    ):
        return BrowserCrashError(
            f"{label}: the page or browser crashed or was closed ({_first_line(text, 120)}); "
            "the run can be retried"
        )
    if isinstance(exc, PlaywrightTimeoutError | TimeoutError):
        if isinstance(step, m.GotoStep):
            return NavigationTimeoutError(f"{label}: {step.url} did not load within {within}")
        if isinstance(step, m.WaitForStep) and step.load_state:
            return NavigationTimeoutError(
                f"{label}: the page did not reach {step.load_state!r} within {within}"
            )
        if isinstance(step, m.WaitForStep) and step.url:
            return StepError(
                f"{label}: the URL did not become {step.url!r} within {within} (it is {page.url})"
            )
        sel = _selector(step)
        if sel is not None:
            try:
                present = await page.locator(sel).count() > 0
            except PlaywrightError:
                present = False
            if isinstance(step, m.WaitForStep) and present:
                return StepError(
                    f"{label}: selector {sel!r} did not become {step.state} within {within}"
                )
            if present:
                return StepError(
                    f"{label}: selector {sel!r} matched, but the element was not ready "
                    f"(visible, enabled, stable) within {within}"
                )
            return StepError(f"{label}: selector {sel!r} did not appear within {within}")
        return StepError(f"{label}: timed out after {within}")
    if isinstance(exc, PlaywrightError):
        net = _NET.search(text)
        if net:
            code = net.group(1)
            url = getattr(step, "url", None) or page.url
            if "AUTH" in code and ("PROXY" in code or "INVALID_AUTH" in code):
                return ProxyAuthError(
                    f"{label}: the proxy refused the credentials loading {url} ({code})"
                )
            if "PROXY" in code or "TUNNEL" in code:
                return ProxyError(f"{label}: the proxy failed loading {url} ({code})")
            return StepError(
                f"{label}: could not load {url} ({code})", retryable=code in _TRANSIENT_NET
            )
        return StepError(f"{label}: {_first_line(text)}")
    return StepError(f"{label}: {type(exc).__name__}: {_first_line(text)}")


async def _failure_screenshot(page: Page, ctx: CommandContext, index: int) -> Path | None:
    if not ctx.screenshot_on_failure or page.is_closed():
        return None
    path = ctx.artifacts_dir / f"failure-step-{index + 1:02d}.png"
    try:
        ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=path, timeout=5000)
    except (PlaywrightError, OSError) as exc:
        logger.warning("No failure screenshot for step %d: %s", index + 1, _first_line(str(exc)))
        return None
    return path


async def run_steps(page: Page, command: m.CommandSpec, ctx: CommandContext) -> CommandResult:
    """Run `command` on `page`: render each step's templates, execute, keep outputs by id."""
    started = time.perf_counter()
    params = validate_params(command, ctx.params)
    params, secret_values = await resolve_secret_params(
        command, params, profile=ctx.profile, loader=ctx.secret_loader
    )
    ctx.secrets = {
        k: params[k] for k, p in command.params.items() if p.type == "secret" and k in params
    }
    scrub = Scrubber(secret_values)
    register_secrets(page.context, secret_values)
    ctx.artifacts_dir.mkdir(parents=True, exist_ok=True)
    result = CommandResult(command=command.name, version=command.version)
    ctx.outputs = result.outputs
    scope = {"steps": result.outputs, "params": params, "profile": ctx.profile, "run": ctx.run}
    steps: list[m.StepBase] = list(command.steps)
    if command.python:
        steps = [m.PythonStep(function=command.python, id="run")]
    crashed = False

    def on_crash(_page: Page) -> None:
        nonlocal crashed
        crashed = True

    page.on("crash", on_crash)
    try:
        for index, step in enumerate(steps):
            env = StepEnv(
                index=index,
                label=step_label(index, step),
                timeout=step.timeout or command.timeout,
                ctx=ctx,
                artifacts=result.artifacts,
            )
            t0 = time.perf_counter()
            logger.debug("%s %s: %s", command.ref, env.label, step.name or "")
            rendered: m.StepBase | None = None
            try:
                rendered = render_step(step, scope)
                outputs = await execute(page, rendered, env)
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:
                err = await _map_error(exc, page, rendered or step, env, crashed)
                if secret_values:
                    err.args = (scrub(err.message), *err.args[1:])
                    _scrub_outputs(result.outputs, scrub)
                    if err is not exc:  # the original's text may hold the value too
                        exc = StepError(scrub(str(exc)))
                spent = timedelta(seconds=time.perf_counter() - t0)
                result.steps.append(
                    StepOutcome(index, step.action_name, step.id, "failed", spent, err.message)
                )
                if step.optional and not isinstance(err, BrowserCrashError):
                    logger.warning("%s: optional step failed: %s", command.ref, err.message)
                    continue
                result.ok = False
                result.duration = timedelta(seconds=time.perf_counter() - started)
                shot = None
                if not isinstance(err, BrowserCrashError):
                    shot = await _failure_screenshot(page, ctx, index)
                if shot is not None:
                    result.artifacts.append(shot)
                for name, value in (
                    ("step_index", index),
                    ("step_id", step.id),
                    ("step_action", step.action_name),
                    ("result", result),
                    ("screenshot", shot),
                ):
                    setattr(err, name, value)
                raise err from (None if err is exc else exc)
            if step.id:
                result.outputs[step.id] = _scrubbed(outputs, scrub) if secret_values else outputs
            result.steps.append(
                StepOutcome(
                    index,
                    step.action_name,
                    step.id,
                    "ok",
                    timedelta(seconds=time.perf_counter() - t0),
                )
            )
    finally:
        page.remove_listener("crash", on_crash)
    result.duration = timedelta(seconds=time.perf_counter() - started)
    return result
