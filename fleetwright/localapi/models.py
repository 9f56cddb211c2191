"""Request and response bodies of the local API (its OpenAPI document is made from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ClosedOut",
    "ErrorOut",
    "OpenedOut",
    "ProfileOut",
    "RunIn",
    "RunOut",
    "StartIn",
]


class StartIn(BaseModel):
    """How to open a profile."""

    model_config = ConfigDict(extra="forbid")

    headed: bool = Field(default=False, description="Show a window (the server needs a display).")
    port: int | None = Field(
        default=None, ge=1024, le=65535, description="CDP port on 127.0.0.1; default random."
    )
    timeout: float | None = Field(
        default=None, gt=0, le=7 * 24 * 3600, description="Close (and save) after this many s."
    )


class OpenedOut(BaseModel):
    """An opened profile: connect a tool to `ws_endpoint` (CDP, loopback, no authentication)."""

    profile: str
    ws_endpoint: str
    port: int
    state_mode: Literal["storage", "persistent"]
    headed: bool
    proxy: str | None
    holder: str
    started_at: datetime
    expires_at: datetime | None


class ClosedOut(BaseModel):
    """How a closed profile ended: `saved` with the new state version, or why not."""

    profile: str
    outcome: str | None
    reason: str | None = None
    saved_version: int | None = None


class ProfileOut(BaseModel):
    """A profile as the catalogue has it, and whether it is open on this machine."""

    model_config = ConfigDict(extra="allow")

    name: str
    status: str
    state_mode: str
    tags: list[str] = Field(default_factory=list)
    lease_holder: str | None = None
    open: OpenedOut | None = None


class RunIn(BaseModel):
    """A command on a selection of profiles, run through the run-command deployment."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=200)
    profiles: list[str] = Field(default_factory=list, max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=100)
    all_active: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    version: str | None = Field(default=None, max_length=100)


class RunOut(BaseModel):
    """A fleet run: its Prefect state and, once sessions ran, their outcomes."""

    model_config = ConfigDict(extra="allow")

    id: str
    state: str
    ok: int = 0
    failed: int = 0
    skipped: int = 0


class ErrorOut(BaseModel):
    """Every error: one line saying what is wrong and what to do."""

    detail: str
