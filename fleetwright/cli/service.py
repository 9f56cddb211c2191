"""`fleetwright service`: add GitHub/OpenAI accounts, sign in with the device flow, list them.

Secrets are read from environment variables or a hidden prompt, never from arguments.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import SecretStr

from fleetwright.errors import FleetwrightError, ValidationError

__all__ = ["app", "read_secret"]

T = TypeVar("T")
app = typer.Typer(help="Service accounts (GitHub, OpenAI) used by steps.", no_args_is_help=True)
add_app = typer.Typer(help="Add a service account.", no_args_is_help=True)
login_app = typer.Typer(help="Sign in to a service account.", no_args_is_help=True)
app.add_typer(add_app, name="add")
app.add_typer(login_app, name="login")


@login_app.callback()
def _login_group() -> None:
    """Sign in to a service account."""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro`; a Fleetwright error becomes one line on stderr and exit code 2."""
    try:
        return asyncio.run(coro)
    except FleetwrightError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None


def read_secret(env: str | None, what: str, *, required: bool = True) -> SecretStr | None:
    """A secret from the environment variable `env`, else a hidden prompt on a terminal."""
    if env:
        value = os.environ.get(env)
        if not value:
            raise ValidationError(f"{what}: environment variable {env} is empty or unset")
        return SecretStr(value)
    if not required:
        return None
    if not os.isatty(0):
        raise ValidationError(f"{what}: set it in an environment variable and name it with --*-env")
    return SecretStr(typer.prompt(what, hide_input=True))


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@add_app.command("github")
def add_github(
    account: str = typer.Option(..., help="The account's name in Fleetwright."),
    base_url: str = typer.Option("https://api.github.com", help="API base URL (Enterprise)."),
    token_env: str | None = typer.Option(None, help="Env var holding a personal access token."),
    app_id: str | None = typer.Option(None, help="GitHub App id (App mode)."),
    private_key_file: Path | None = typer.Option(None, help="The App's PEM private key file."),
    installation_id: int | None = typer.Option(None, help="The App installation id."),
    client_id: str | None = typer.Option(None, help="OAuth app client id (device flow)."),
    client_secret_env: str | None = typer.Option(None, help="Env var with the client secret."),
    webhook_secret_env: str | None = typer.Option(None, help="Env var with the webhook secret."),
    rate_burst: int | None = typer.Option(None, help="Rate limit burst (calls)."),
    rate_per_second: float | None = typer.Option(None, help="Rate limit refill per second."),
) -> None:
    """Add a GitHub account: a token, a GitHub App installation, or an OAuth app."""
    from fleetwright.blocks.github import GitHubCredentials
    from fleetwright.integrations.services import add_service

    async def go() -> None:
        fields: dict[str, Any] = {"account": account, "base_url": base_url}
        if app_id or private_key_file or installation_id:
            if not (app_id and private_key_file and installation_id):
                raise ValidationError(
                    "App mode needs --app-id, --private-key-file and --installation-id"
                )
            try:
                pem = private_key_file.read_text()
            except OSError as exc:
                raise ValidationError(f"cannot read {private_key_file}: {exc.strerror}") from None
            fields |= {
                "auth_mode": "app",
                "app_id": app_id,
                "private_key": SecretStr(pem),
                "installation_id": installation_id,
            }
        elif client_id:
            fields |= {
                "auth_mode": "oauth",
                "client_id": client_id,
                "client_secret": read_secret(client_secret_env, "client secret", required=False),
            }
        else:
            fields |= {"auth_mode": "token", "token": read_secret(token_env, "GitHub token")}
        if webhook_secret_env:
            fields["webhook_secret"] = read_secret(webhook_secret_env, "webhook secret")
        info = await add_service(
            "github",
            account,
            GitHubCredentials(**fields),
            rate_limit_burst=rate_burst,
            rate_limit_per_second=rate_per_second,
        )
        typer.echo(f"added github account {info.account} (block {info.block_name})")
        if fields["auth_mode"] == "oauth":
            typer.echo(f"next: fleetwright service login github --account {account}")

    _run(go())


@add_app.command("openai")
def add_openai(
    account: str = typer.Option(..., help="The account's name in Fleetwright."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="Env var holding the API key."),
    organization: str | None = typer.Option(None),
    project: str | None = typer.Option(None),
    base_url: str | None = typer.Option(None, help="For compatible servers."),
    model: str = typer.Option("gpt-4.1-mini", help="Default model for steps."),
    rate_burst: int | None = typer.Option(None, help="Rate limit burst (calls)."),
    rate_per_second: float | None = typer.Option(None, help="Rate limit refill per second."),
) -> None:
    """Add an OpenAI (or compatible) account."""
    from fleetwright.blocks.openai import OpenAICredentials
    from fleetwright.integrations.services import add_service

    async def go() -> None:
        key = read_secret(api_key_env, "OpenAI API key")
        block = OpenAICredentials(
            account=account,
            api_key=key,
            organization=organization,
            project=project,
            base_url=base_url,
            model=model,
        )
        info = await add_service(
            "openai", account, block, rate_limit_burst=rate_burst,
            rate_limit_per_second=rate_per_second,
        )  # fmt: skip
        typer.echo(f"added openai account {info.account} (block {info.block_name})")

    _run(go())


@login_app.command("github")
def login_github(
    account: str = typer.Option(..., help="The GitHub account (OAuth mode) to sign in."),
    scope: list[str] = typer.Option([], help="OAuth scopes to ask for (repeatable)."),
) -> None:
    """Sign in with GitHub's device flow: shows a code and URL, then stores the tokens."""
    from fleetwright.integrations.github_login import device_login
    from fleetwright.integrations.services import load_credentials

    def show(user_code: str, url: str) -> None:
        typer.echo(f"Open {url} and enter the code {user_code}")
        typer.echo("Waiting for you to approve ...")

    async def go() -> None:
        block = await load_credentials("github", account)
        await device_login(block, on_code=show, scopes=scope or None)
        typer.echo(f"signed in: tokens saved for github account {account}")

    _run(go())


@app.command("list")
def list_(kind: str | None = typer.Option(None, help="github or openai")) -> None:
    """List service accounts (names only; secrets stay in their blocks)."""
    from fleetwright.integrations.services import list_services

    try:
        rows = list_services(kind=kind)
    except FleetwrightError as exc:
        _fail(exc.message)
        return
    if not rows:
        typer.echo("no service accounts; add one with `fleetwright service add github|openai`")
        return
    width = max(len(r.account) for r in rows)
    for row in rows:
        typer.echo(f"{row.kind:<7} {row.account:<{width}}  {row.block_name}")


@app.command("remove")
def remove(kind: str, account: str) -> None:
    """Remove a service account: its catalogue row, block and rate limit."""
    from fleetwright.integrations.services import remove_service

    _run(remove_service(kind, account))
    typer.echo(f"removed {kind} account {account}")
