"""OAuth device-flow sign-in for a GitHubCredentials block: show the code, wait, store tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from githubkit import GitHub
from githubkit.auth import OAuthDeviceAuthStrategy
from githubkit.exception import AuthExpiredError, GitHubException

from fleetwright.blocks.github import GitHubCredentials
from fleetwright.errors import ServiceError, ServiceUnavailableError, ValidationError

__all__ = ["device_login"]


async def device_login(
    block: GitHubCredentials,
    *,
    on_code: Callable[[str, str], None],
    scopes: list[str] | None = None,
    save: bool = True,
) -> GitHubCredentials:
    """Run the device flow for `block` (oauth mode): `on_code(user_code, url)` shows the code;
    the access/refresh tokens go into the block, saved under its name when `save`."""
    if block.auth_mode != "oauth" or not block.client_id:
        raise ValidationError(
            f"GitHub account {block.account!r} is not an OAuth app (auth_mode={block.auth_mode}); "
            "add it with `fleetwright service add github --client-id ...`"
        )

    def shown(data: dict[str, Any]) -> None:
        on_code(str(data["user_code"]), str(data["verification_uri"]))

    strategy = OAuthDeviceAuthStrategy(block.client_id, shown, scopes)
    try:
        tokens = await strategy.async_exchange_token(GitHub(strategy, base_url=block.base_url))
    except AuthExpiredError:
        raise ServiceError(
            "the device code expired before it was entered; run the login again"
        ) from None
    except KeyError:
        raise ServiceError(
            f"GitHub refused the device flow for client id {block.client_id!r}; "
            "check the OAuth app's client id and that device flow is enabled"
        ) from None
    except GitHubException as exc:
        raise ServiceUnavailableError(
            f"the GitHub device flow failed ({type(exc).__name__}); try again"
        ) from None
    block.store_oauth_tokens(tokens)
    name = block._block_document_name
    if save and name:
        await block.asave(name, overwrite=True)
    return block
