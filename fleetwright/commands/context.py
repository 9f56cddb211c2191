"""What a command runs with (CommandContext) and what it gives back (CommandResult)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = ["CommandContext", "CommandResult", "Integrations", "StepOutcome"]


class Integrations(Protocol):
    """The caller's hook for `github.*` and `openai.*` steps."""

    async def call(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run integration `kind` (e.g. "github.create_issue") with rendered `args`."""
        ...


@dataclass(kw_only=True)
class CommandContext:
    """One run's inputs: the profile's fields, parameters, run info, where artifacts go.

    `outputs` fills in as steps run (Python commands can read earlier steps' outputs).
    `base_dir` resolves relative upload paths (default: the working directory).
    `params` holds what the caller passed: for `secret` parameters, Secret block names; the
    values are read inside the session and never written back here.
    """

    artifacts_dir: Path
    profile: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    integrations: Integrations | None = None
    base_dir: Path | None = None
    screenshot_on_failure: bool = True
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Reads a Secret block by name for `secret` parameters (default: Prefect's Secret blocks).
    secret_loader: Callable[[str], Awaitable[str]] | None = None
    #: Values of the `secret` parameters, read inside the session (Python commands use these).
    secrets: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class StepOutcome:
    """How one step went."""

    index: int
    action: str
    id: str | None
    status: Literal["ok", "failed"]
    duration: timedelta
    error: str | None = None


@dataclass
class CommandResult:
    """Outputs by step id, artifact files written, and each step's outcome.

    Returned on success; on failure the raised error carries the partial result as
    `error.result`.
    """

    command: str
    version: str
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: list[Path] = field(default_factory=list)
    steps: list[StepOutcome] = field(default_factory=list)
    duration: timedelta = timedelta(0)
    ok: bool = True
