"""The GitHubCredentials block: token, GitHub App or OAuth device-flow credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

__all__ = ["GitHubCredentials"]


class GitHubCredentials(Block):
    """Credentials for one GitHub account: a token, an App installation, or an OAuth app."""

    _block_type_name = "Fleetwright GitHub Credentials"
    _block_type_slug = "fleetwright-github-credentials"
    _logo_url = None
    _description = "GitHub credentials for Fleetwright automations (token, App, OAuth)."

    account: str = Field(description="The service account's name in Fleetwright.")
    auth_mode: Literal["token", "app", "oauth"] = "token"
    base_url: str = Field(default="https://api.github.com", description="API base URL.")
    token: SecretStr | None = Field(default=None, description="Personal access token.")
    app_id: str | None = None
    private_key: SecretStr | None = Field(default=None, description="The App's PEM key.")
    installation_id: int | None = None
    client_id: str | None = Field(default=None, description="OAuth app client id.")
    client_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    access_token_expires_at: datetime | None = None
    refresh_token: SecretStr | None = None
    refresh_token_expires_at: datetime | None = None
    webhook_secret: SecretStr | None = None
