"""The OpenAICredentials block: an API key, organisation/project and base URL."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

__all__ = ["OpenAICredentials"]


class OpenAICredentials(Block):
    """Credentials for one OpenAI (or compatible) account."""

    _block_type_name = "Fleetwright OpenAI Credentials"
    _block_type_slug = "fleetwright-openai-credentials"
    _logo_url = None
    _description = "OpenAI credentials for Fleetwright automations."

    account: str = Field(description="The service account's name in Fleetwright.")
    api_key: SecretStr
    organization: str | None = None
    project: str | None = None
    base_url: str | None = Field(default=None, description="For compatible servers and tests.")
    model: str = Field(default="gpt-4.1-mini", description="Default model.")
