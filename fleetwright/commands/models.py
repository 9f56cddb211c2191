"""Command and step models: what a declarative command is, validated by pydantic.

These models hold the *normalised* form (each step a mapping with an `action` key); users
write the YAML form that fleetwright.commands.parsing turns into it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleetwright.specs import check_name

__all__ = [
    "ACTIONS",
    "GITHUB_ACTIONS",
    "MAX_SLEEP",
    "MAX_STEP_TIMEOUT",
    "AssertStep",
    "CheckStep",
    "ClickStep",
    "CommandSpec",
    "CountAssert",
    "DownloadStep",
    "EvaluateStep",
    "ExtractStep",
    "FillStep",
    "GitHubStep",
    "GotoStep",
    "HoverStep",
    "OpenAIStep",
    "ParamSpec",
    "ParamType",
    "PressStep",
    "PythonStep",
    "ScreenshotStep",
    "ScrollStep",
    "SelectStep",
    "SleepStep",
    "Step",
    "StepBase",
    "TextAssert",
    "TraceMode",
    "UploadStep",
    "UrlAssert",
    "VisibleAssert",
    "WaitForStep",
    "check_trace_mode",
]

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}$")
MAX_STEP_TIMEOUT = timedelta(minutes=10)
MAX_SLEEP = timedelta(seconds=60)
DEFAULT_TIMEOUT = timedelta(seconds=10)

#: When a session records a Playwright trace, and when it keeps it:
#: "off" never; "on" every session, always kept; "on-failure" every session, kept when it
#: fails; "on-retry" (the default, Playwright Test's "on-first-retry") only retried attempts,
#: always kept. Recording costs CPU on every action (DOM snapshots, screencast frames), so the
#: default records only when a session is already known to be in trouble.
TraceMode = Literal["off", "on", "on-failure", "on-retry"]


def check_trace_mode(trace: str | None) -> None:
    """A `--trace` value that is not a TraceMode is a one-line ValidationError."""
    from fleetwright.errors import ValidationError

    modes = get_args(TraceMode)
    if trace is not None and trace not in modes:
        raise ValidationError(f"--trace {trace!r} is not one of {', '.join(modes)}")


ParamType = Literal["str", "int", "float", "bool", "list", "dict", "secret"]
LoadState = Literal["load", "domcontentloaded", "networkidle"]
GitHubAction = Literal[
    "github.create_issue",
    "github.comment",
    "github.add_labels",
    "github.close_issue",
    "github.put_file",
    "github.dispatch_workflow",
    "github.search_issues",
    "github.get_repo",
]
GITHUB_ACTIONS: tuple[str, ...] = get_args(GitHubAction)
# Arguments the runner checks before calling an integration; the rest is the integration's.
_REQUIRED_ARGS: dict[str, tuple[str, ...]] = {
    **{a: ("repo",) for a in GITHUB_ACTIONS if a != "github.search_issues"},
    "github.search_issues": ("query",),
    "openai.respond": ("prompt",),
}


def _exactly_one(model: BaseModel, fields: tuple[str, ...]) -> None:
    given = [f for f in fields if getattr(model, f) is not None]
    if len(given) != 1:
        names = ", ".join(fields)
        raise ValueError(
            f"give exactly one of {names}" + (f" (got {', '.join(given)})" if given else "")
        )


class StepBase(BaseModel):
    """Keys every step may carry: an id for its outputs, a label, a timeout, `optional`."""

    model_config = ConfigDict(extra="forbid")

    SHORTHAND: ClassVar[str | None] = None
    OUTPUTS: ClassVar[frozenset[str] | None] = frozenset()

    id: str | None = None
    name: str | None = None
    timeout: timedelta | None = None
    optional: bool = False

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is not None and not IDENT.match(value):
            raise ValueError(
                f"id {value!r} is not valid; use letters, digits and _ (not starting with a digit)"
            )
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not timedelta(0) < value <= MAX_STEP_TIMEOUT:
            raise ValueError("timeout must be more than 0 and at most 600 seconds")
        return value

    @property
    def action_name(self) -> str:
        """The step's action, as written in YAML (`fill`, `github.create_issue`, ...)."""
        return str(getattr(self, "action", type(self).__name__))

    def output_fields(self) -> frozenset[str] | None:
        """The fields this step's outputs have (None: any, decided at run time)."""
        return self.OUTPUTS


class GotoStep(StepBase):
    """Open a URL."""

    SHORTHAND = "url"
    OUTPUTS = frozenset({"url", "status"})
    action: Literal["goto"] = "goto"
    url: str
    wait_until: Literal["load", "domcontentloaded", "networkidle", "commit"] = "load"


class ClickStep(StepBase):
    SHORTHAND = "selector"
    action: Literal["click"] = "click"
    selector: str
    button: Literal["left", "right", "middle"] = "left"
    click_count: int = Field(default=1, ge=1, le=3)


class FillStep(StepBase):
    action: Literal["fill"] = "fill"
    selector: str
    value: str


class PressStep(StepBase):
    """Press a key on an element, or on the page's keyboard when no selector is given."""

    action: Literal["press"] = "press"
    selector: str | None = None
    key: str


class SelectStep(StepBase):
    OUTPUTS = frozenset({"selected"})
    action: Literal["select"] = "select"
    selector: str
    value: str | list[str] | None = None
    label: str | list[str] | None = None

    @model_validator(mode="after")
    def _one(self) -> SelectStep:
        _exactly_one(self, ("value", "label"))
        return self


class CheckStep(StepBase):
    SHORTHAND = "selector"
    action: Literal["check"] = "check"
    selector: str
    checked: bool = True


class HoverStep(StepBase):
    SHORTHAND = "selector"
    action: Literal["hover"] = "hover"
    selector: str


class WaitForStep(StepBase):
    """Wait for a selector (in a state), a URL (glob), or a load state."""

    SHORTHAND = "selector"
    action: Literal["wait_for"] = "wait_for"
    selector: str | None = None
    state: Literal["attached", "detached", "visible", "hidden"] = "visible"
    url: str | None = None
    load_state: LoadState | None = None

    @model_validator(mode="after")
    def _one(self) -> WaitForStep:
        _exactly_one(self, ("selector", "url", "load_state"))
        return self


class ExtractStep(StepBase):
    """Read text, an attribute, a list of matches, or a table into outputs under `id`."""

    action: Literal["extract"] = "extract"
    selector: str
    kind: Literal["text", "attribute", "list", "table"] = "text"
    attribute: str | None = None
    allow_empty: bool = False

    @model_validator(mode="after")
    def _check(self) -> ExtractStep:
        if self.id is None:
            raise ValueError("id: an extract step needs an id to name its outputs")
        if self.kind == "attribute" and not self.attribute:
            raise ValueError("attribute: required when kind is 'attribute'")
        if self.attribute and self.kind in ("text", "table"):
            raise ValueError(f"attribute: not used with kind '{self.kind}'")
        return self

    def output_fields(self) -> frozenset[str] | None:
        return {
            "text": frozenset({"text", "value"}),
            "attribute": frozenset({"value"}),
            "list": frozenset({"items", "count", "value"}),
            "table": frozenset({"headers", "rows", "count", "value"}),
        }[self.kind]


class ScreenshotStep(StepBase):
    """Save a PNG/JPEG of the page (or one element) into the run's artifacts folder."""

    SHORTHAND = "path"
    OUTPUTS = frozenset({"path"})
    action: Literal["screenshot"] = "screenshot"
    path: str | None = None
    full_page: bool = False
    selector: str | None = None


class EvaluateStep(StepBase):
    """Run a JavaScript expression or function in the page; its JSON result is `value`."""

    SHORTHAND = "expression"
    OUTPUTS = frozenset({"value"})
    action: Literal["evaluate"] = "evaluate"
    expression: str
    arg: Any = None


def _regex(value: str | None) -> str | None:
    if value is not None and "{{" not in value:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    return value


class TextAssert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selector: str
    contains: str | None = None
    equals: str | None = None
    matches: str | None = None

    _check_regex = field_validator("matches")(_regex)

    @model_validator(mode="after")
    def _one(self) -> TextAssert:
        _exactly_one(self, ("contains", "equals", "matches"))
        return self


class UrlAssert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contains: str | None = None
    equals: str | None = None
    matches: str | None = None

    _check_regex = field_validator("matches")(_regex)

    @model_validator(mode="after")
    def _one(self) -> UrlAssert:
        _exactly_one(self, ("contains", "equals", "matches"))
        return self


class VisibleAssert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selector: str
    visible: bool = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"selector": data} if isinstance(data, str) else data


class CountAssert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selector: str
    equals: int | None = Field(default=None, ge=0)
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some(self) -> CountAssert:
        if self.equals is None and self.min is None and self.max is None:
            raise ValueError("give equals, min or max")
        if self.equals is not None and (self.min is not None or self.max is not None):
            raise ValueError("give either equals or min/max, not both")
        return self


class AssertStep(StepBase):
    """Check text, URL, visibility or a count; retried until the step's timeout."""

    action: Literal["assert"] = "assert"
    text: TextAssert | None = None
    url: UrlAssert | None = None
    visible: VisibleAssert | None = None
    count: CountAssert | None = None

    @model_validator(mode="after")
    def _one(self) -> AssertStep:
        _exactly_one(self, ("text", "url", "visible", "count"))
        return self


class DownloadStep(StepBase):
    """Click `selector`, save the download it starts into the artifacts folder."""

    SHORTHAND = "selector"
    OUTPUTS = frozenset({"path", "filename", "size"})
    action: Literal["download"] = "download"
    selector: str
    save_as: str | None = None


class UploadStep(StepBase):
    action: Literal["upload"] = "upload"
    selector: str
    files: str | list[str]


class ScrollStep(StepBase):
    """Scroll an element into view, to the top/bottom, or by a number of pixels."""

    action: Literal["scroll"] = "scroll"
    selector: str | None = None
    to: Literal["top", "bottom"] | None = None
    by: int | None = None

    @model_validator(mode="after")
    def _one(self) -> ScrollStep:
        _exactly_one(self, ("selector", "to", "by"))
        return self


class SleepStep(StepBase):
    """Wait a fixed time (at most 60 seconds); prefer wait_for."""

    SHORTHAND = "seconds"
    action: Literal["sleep"] = "sleep"
    seconds: timedelta

    @field_validator("seconds")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= MAX_SLEEP:
            raise ValueError("must be between 0 and 60 seconds; use wait_for to wait for a page")
        return value


class _IntegrationStep(StepBase):
    OUTPUTS: ClassVar[frozenset[str] | None] = None
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _required(self) -> _IntegrationStep:
        for key in _REQUIRED_ARGS.get(self.action_name, ()):
            if key not in self.args:
                raise ValueError(f"{key}: required field is missing")
        return self


class GitHubStep(_IntegrationStep):
    """A GitHub call through the caller's integrations (`github.create_issue`, ...)."""

    action: GitHubAction


class OpenAIStep(_IntegrationStep):
    """A model response through the caller's integrations (`openai.respond`)."""

    OUTPUTS = frozenset(
        {"text", "model", "tokens_used", "input_tokens", "output_tokens", "response_id"}
    )
    action: Literal["openai.respond"] = "openai.respond"

    def output_fields(self) -> frozenset[str]:
        """What integrations.openai_api.respond returns: `json` only when a schema is given."""
        return self.OUTPUTS | {"json"} if "schema" in self.args else self.OUTPUTS


class PythonStep(StepBase):
    """Call a Python command (`pkg.mod:run` or an entry-point name); its dict is the output."""

    SHORTHAND = "function"
    OUTPUTS = None
    action: Literal["python"] = "python"
    function: str


Step = Annotated[
    GotoStep
    | ClickStep
    | FillStep
    | PressStep
    | SelectStep
    | CheckStep
    | HoverStep
    | WaitForStep
    | ExtractStep
    | ScreenshotStep
    | EvaluateStep
    | AssertStep
    | DownloadStep
    | UploadStep
    | ScrollStep
    | SleepStep
    | GitHubStep
    | OpenAIStep
    | PythonStep,
    Field(discriminator="action"),
]

STEP_MODELS: dict[str, type[StepBase]] = {
    "goto": GotoStep,
    "click": ClickStep,
    "fill": FillStep,
    "press": PressStep,
    "select": SelectStep,
    "check": CheckStep,
    "hover": HoverStep,
    "wait_for": WaitForStep,
    "extract": ExtractStep,
    "screenshot": ScreenshotStep,
    "evaluate": EvaluateStep,
    "assert": AssertStep,
    "download": DownloadStep,
    "upload": UploadStep,
    "scroll": ScrollStep,
    "sleep": SleepStep,
    **{a: GitHubStep for a in GITHUB_ACTIONS},
    "openai.respond": OpenAIStep,
    "python": PythonStep,
}
ACTIONS: tuple[str, ...] = tuple(STEP_MODELS)
INTEGRATION_ACTIONS: frozenset[str] = frozenset(
    a for a, m in STEP_MODELS.items() if issubclass(m, _IntegrationStep)
)

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "secret": (str,),
}


class ParamSpec(BaseModel):
    """A declared parameter: its type, default, whether it is required.

    A `secret` parameter's value is the name of a Prefect Secret block, never the secret
    itself; its default may be a template over the profile (`site-{{ profile.name }}`) for
    per-profile credentials. The value is read from the block inside the session.
    """

    model_config = ConfigDict(extra="forbid")

    type: ParamType = "str"
    default: Any = None
    required: bool | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.default is not None:
            if self.required:
                raise ValueError("a parameter with a default cannot be required")
            ok = isinstance(self.default, _PY_TYPES[self.type]) and not (
                self.type in ("int", "float") and isinstance(self.default, bool)
            )
            if not ok:
                raise ValueError(f"default {self.default!r} is not of type {self.type}")
        return self

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


class CommandSpec(BaseModel):
    """A named, versioned automation: declared params and steps, or a Python function."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    description: str = ""
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    python: str | None = None
    timeout: timedelta = DEFAULT_TIMEOUT
    trace: TraceMode = "on-retry"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, what="command")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, bool | float):
            raise ValueError(f'write the version as a quoted string, e.g. version: "{value}"')
        if isinstance(value, int):
            value = str(value)
        if isinstance(value, str) and not VERSION.match(value):
            raise ValueError(
                f'version {value!r} is not valid; use digits and dots such as "1" or "1.2.0"'
            )
        return value

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for name in value:
            if not IDENT.match(name):
                raise ValueError(f"parameter name {name!r} is not valid; use letters, digits and _")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= MAX_STEP_TIMEOUT:
            raise ValueError("timeout must be more than 0 and at most 600 seconds")
        return value

    @model_validator(mode="after")
    def _body(self) -> CommandSpec:
        if self.python and self.steps:
            raise ValueError("give either steps or python, not both (use a python step to mix)")
        if not self.python and not self.steps:
            raise ValueError("steps: a command needs at least one step (or python: 'pkg.mod:run')")
        return self

    @property
    def ref(self) -> str:
        """`name@version`, as messages and the CLI show it."""
        return f"{self.name}@{self.version}"
