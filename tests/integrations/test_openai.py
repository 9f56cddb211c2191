"""openai.respond through the Responses API against the loopback fake."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from fleetwright.blocks.openai import OpenAICredentials
from fleetwright.errors import CommandSpecError, OutputSchemaError, ServiceError, ValidationError
from fleetwright.integrations.steps import Integrations
from fleetwright.testing.fake_openai import FakeOpenAI

SCHEMA = {
    "type": "object",
    "properties": {"price": {"type": "number"}, "currency": {"type": "string"}},
    "required": ["price", "currency"],
    "additionalProperties": False,
}


def _local(block: OpenAICredentials) -> Integrations:
    return Integrations.with_credentials(block, prefect_rate_limits=False, redis_url="")


async def test_text_answer_with_model_and_tokens(
    fake_openai: FakeOpenAI, openai_block: OpenAICredentials
) -> None:
    fake_openai.answer("The page shows a price of 12 EUR.")
    out = await _local(openai_block).call(
        "openai.respond", {"prompt": "What does the page show?", "instructions": "Be brief."}
    )
    assert out["text"] == "The page shows a price of 12 EUR."
    assert out["model"].startswith(openai_block.model)
    assert out["tokens_used"] == out["input_tokens"] + out["output_tokens"] > 0
    sent = fake_openai.requests[-1].json()
    assert sent["model"] == openai_block.model and sent["input"] == "What does the page show?"
    assert sent["instructions"] == "Be brief."


async def test_structured_output_matching_the_schema(
    fake_openai: FakeOpenAI, openai_block: OpenAICredentials
) -> None:
    fake_openai.answer('{"price": 12.5, "currency": "EUR"}')
    out = await _local(openai_block).call(
        "openai.respond", {"prompt": "price?", "schema": SCHEMA, "model": "gpt-4.1"}
    )
    assert out["json"] == {"price": 12.5, "currency": "EUR"}
    fmt = fake_openai.requests[-1].json()["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["schema"] == SCHEMA and fmt["strict"] is True
    assert fake_openai.requests[-1].json()["model"] == "gpt-4.1"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            '{"price": "twelve", "currency": "EUR"}',
            r"at \$\.price: 'twelve' is not of type 'number'",
        ),
        ('{"price": 12}', r"'currency' is a required property"),
        ("twelve euros", "not JSON"),
    ],
)
async def test_structured_output_breaking_the_schema_is_a_clear_error(
    fake_openai: FakeOpenAI, openai_block: OpenAICredentials, answer: str, message: str
) -> None:
    fake_openai.answer(answer)
    with pytest.raises(OutputSchemaError, match=message) as exc:
        await _local(openai_block).call("openai.respond", {"prompt": "price?", "schema": SCHEMA})
    assert "openai.respond" in str(exc.value) and not exc.value.retryable


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ({"prompt": "x", "schema": {"type": "array"}}, ValidationError, "must describe an object"),
        ({"prompt": "x", "schema": {"type": 5}}, ValidationError, "schema is invalid"),
        ({"prompt": ""}, ValidationError, "non-empty prompt"),
        ({"prompt": "x", "temperature": 2}, CommandSpecError, "temperature"),
    ],
)
async def test_bad_step_arguments(
    openai_block: OpenAICredentials, args: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        await _local(openai_block).call("openai.respond", args)


async def test_wrong_key_is_rejected_without_echoing_it(
    fake_openai: FakeOpenAI, openai_block: OpenAICredentials
) -> None:
    wrong = openai_block.model_copy(update={"api_key": SecretStr("sk-wrong-0123456789")})
    with pytest.raises(ServiceError, match="API key was rejected") as exc:
        await _local(wrong).call("openai.respond", {"prompt": "x"})
    assert "sk-wrong-0123456789" not in str(exc.value)
