"""The OpenAICredentials block: an API key, organisation/project and base URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

if TYPE_CHECKING:
    from openai import AsyncOpenAI

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

    def get_client(self, **options: Any) -> AsyncOpenAI:
        """An async OpenAI client; `options` go to the SDK (max_retries, timeout, ...)."""
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=self.api_key.get_secret_value(),
            organization=self.organization,
            project=self.project,
            base_url=self.base_url,
            **options,
        )
