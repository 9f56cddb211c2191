"""`openai.respond`: a prompt to text, or to JSON validated against the step's schema, through
the Responses API; 429s wait out retry-after; errors mapped to Fleetwright's hierarchy."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import openai
from openai import AsyncOpenAI

from fleetwright.errors import (
    FleetwrightError,
    OutputSchemaError,
    RateLimitedError,
    ServiceError,
    ServiceUnavailableError,
    ValidationError,
)
from fleetwright.observability import record as observe

__all__ = ["openai_error", "respond"]

logger = logging.getLogger(__name__)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                continue
    return None


def openai_error(
    exc: BaseException, *, account: str, scrub: Callable[[str], str]
) -> FleetwrightError:
    """The Fleetwright error for an OpenAI SDK failure as `account`."""
    where = f"OpenAI call as account {account!r}"
    if isinstance(exc, FleetwrightError):
        return exc
    if isinstance(exc, openai.RateLimitError):
        return RateLimitedError(f"{where} was rate limited (429); retry later")
    if isinstance(exc, openai.APITimeoutError):
        return ServiceUnavailableError(f"{where} timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ServiceUnavailableError(f"{where} could not reach the API")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        message = scrub(str(body.get("message") or ""))
        if status >= 500:
            return ServiceUnavailableError(f"{where} failed: the API answered {status} {message}")
        if status == 401:
            return ServiceError(
                f"{where} failed: the API key was rejected (401); "
                "update it with `fleetwright service add openai`"
            )
        return ServiceError(f"{where} failed: the API answered {status} {message}")
    return ServiceError(f"{where} failed: {type(exc).__name__}: {scrub(str(exc))}")


def _check_schema(schema: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValidationError(
            f"openai.respond: the step's schema is invalid: {exc.message}"
        ) from None
    if schema.get("type") != "object":
        raise ValidationError(
            'openai.respond: the schema must describe an object ("type": "object")'
        )


def _validate(text: str, schema: dict[str, Any], model: str) -> Any:
    from jsonschema import Draft202012Validator

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OutputSchemaError(
            f"openai.respond: {model} returned text that is not JSON ({exc.msg} at char "
            f"{exc.pos}); tighten the prompt or the schema"
        ) from None
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in first.path)
        raise OutputSchemaError(
            f"openai.respond: {model}'s output breaks the step's schema at {where}: "
            f"{first.message}" + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")
        )
    return value


async def respond(
    client: AsyncOpenAI,
    *,
    prompt: str,
    model: str,
    schema: dict[str, Any] | None = None,
    schema_name: str = "output",
    instructions: str | None = None,
    max_output_tokens: int | None = None,
    rate_limit_tries: int = 3,
    max_wait: timedelta = timedelta(seconds=60),
) -> dict[str, Any]:
    """Ask `model`; returns text (and `json` when a schema is given), model and tokens used."""
    if not prompt:
        raise ValidationError("openai.respond needs a non-empty prompt")
    options: dict[str, Any] = {}
    if schema is not None:
        _check_schema(schema)
        options["text"] = {
            "format": {
                "type": "json_schema",
                "name": schema_name,
                "schema": schema,
                "strict": schema.get("additionalProperties") is False,
            }
        }
    if instructions:
        options["instructions"] = instructions
    if max_output_tokens:
        options["max_output_tokens"] = max_output_tokens
    attempt = 0
    while True:
        try:
            response = await client.responses.create(model=model, input=prompt, **options)
            break
        except openai.RateLimitError as exc:
            wait = _retry_after(exc)
            attempt += 1
            if attempt >= rate_limit_tries or wait is None or wait > max_wait.total_seconds():
                raise
            logger.info("OpenAI rate limited; retrying in %.1f s", wait)
            await asyncio.sleep(wait)
            observe.ratelimit_waited("openai", wait)
    text = response.output_text
    usage = response.usage
    observe.openai_usage(response.model, usage)
    result: dict[str, Any] = {
        "text": text,
        "model": response.model,
        "tokens_used": usage.total_tokens if usage else None,
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "response_id": response.id,
    }
    if schema is not None:
        result["json"] = _validate(text, schema, response.model)
    return result
