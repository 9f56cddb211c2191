"""Prefect task for OpenAI: a prompt to text or schema-checked JSON, with model and tokens."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.integrations.steps import Integrations
from fleetwright.tasks.retries import retry_if_retryable

__all__ = ["openai_respond"]


@task(
    name="openai-respond",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_if_retryable,
    cache_policy=NO_CACHE,
)
async def openai_respond(
    credentials: OpenAICredentials,
    prompt: str,
    schema: dict[str, Any] | None = None,
    model: str | None = None,
    instructions: str | None = None,
) -> dict[str, Any]:
    """Ask the model; returns text (and `json` with a schema), model and tokens_used."""
    args: dict[str, Any] = {"prompt": prompt, "schema": schema, "instructions": instructions}
    if model:
        args["model"] = model
    return await Integrations.with_credentials(credentials).call("openai.respond", args)
