"""The GitHubCredentials block: token, GitHub App or OAuth device-flow credentials."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr

from fleetwright.errors import ConfigurationError

if TYPE_CHECKING:
    from githubkit import GitHub
    from githubkit.auth import OAuthTokenAuthStrategy

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

    _oauth: Any = PrivateAttr(default=None)

    def _missing(self, what: str) -> ConfigurationError:
        return ConfigurationError(
            f"GitHub account {self.account!r} ({self.auth_mode} mode) has no {what}; "
            f"set it with `fleetwright service add github --account {self.account} ...`"
        )

    def auth_strategy(self) -> Any:
        """The githubkit auth strategy for this block's mode (kept, so refreshes are seen)."""
        from githubkit.auth import AppAuthStrategy, OAuthTokenAuthStrategy, TokenAuthStrategy

        if self.auth_mode == "token":
            if self.token is None:
                raise self._missing("token")
            return TokenAuthStrategy(self.token.get_secret_value())
        if self.auth_mode == "app":
            if not self.app_id or self.private_key is None or self.installation_id is None:
                raise self._missing("app_id, private_key and installation_id")
            return AppAuthStrategy(
                self.app_id, self.private_key.get_secret_value()
            ).as_installation(self.installation_id)
        if self._oauth is not None:
            return self._oauth
        if not self.client_id:
            raise self._missing("client_id")
        if self.access_token is None and self.refresh_token is None:
            raise ConfigurationError(
                f"GitHub account {self.account!r} has not signed in yet; "
                f"run `fleetwright service login github --account {self.account}`"
            )
        self._oauth = OAuthTokenAuthStrategy(
            self.client_id,
            self.client_secret.get_secret_value() if self.client_secret else None,
            token=self.access_token.get_secret_value() if self.access_token else None,
            expire_time=self.access_token_expires_at,
            refresh_token=self.refresh_token.get_secret_value() if self.refresh_token else None,
            refresh_token_expire_time=self.refresh_token_expires_at,
        )
        return self._oauth

    def get_client(self, **config: Any) -> GitHub[Any]:
        """A githubkit client for this account; `config` goes to githubkit (timeouts, retry)."""
        from githubkit import GitHub

        return GitHub(self.auth_strategy(), base_url=self.base_url, **config)

    def store_oauth_tokens(self, strategy: OAuthTokenAuthStrategy) -> bool:
        """Copy tokens from `strategy` into the fields; True if anything changed."""
        self._oauth = strategy
        before = (self.access_token, self.refresh_token)
        self.access_token = SecretStr(strategy.token) if strategy.token else None
        self.refresh_token = SecretStr(strategy.refresh_token) if strategy.refresh_token else None
        self.access_token_expires_at = _utc(strategy.expire_time)
        self.refresh_token_expires_at = _utc(strategy.refresh_token_expire_time)
        return before != (self.access_token, self.refresh_token)

    async def persist_refreshed_tokens(self) -> bool:
        """Save the block if githubkit refreshed its OAuth tokens; True if it saved."""
        if self.auth_mode != "oauth" or self._oauth is None:
            return False
        if not self.store_oauth_tokens(self._oauth):
            return False
        name = self._block_document_name
        if name:
            await self.asave(name, overwrite=True)
        return True


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
