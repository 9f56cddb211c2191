"""The local API's routes (FastAPI): profiles opened for any tool, fleet runs started and read.

Every route needs `Authorization: Bearer <token>`. The CDP endpoints it hands out listen on
127.0.0.1 without authentication (CDP has none): whoever reaches loopback on this machine can
drive an opened profile, so the token guards who may open one, not the endpoint itself.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fleetwright.errors import (
    ConfigurationError,
    FleetwrightError,
    NotFoundError,
    ProfileBusyError,
    UserError,
    ValidationError,
)
from fleetwright.localapi.holder import OpenedRegistry
from fleetwright.localapi.models import (
    ClosedOut,
    ErrorOut,
    OpenedOut,
    ProfileOut,
    RunIn,
    RunOut,
    StartIn,
)
from fleetwright.specs import check_name

__all__ = ["create_app"]

_bearer = HTTPBearer(auto_error=False, description="The API token (`fleetwright api serve`).")
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No or a wrong token."},
    404: {"model": ErrorOut, "description": "Unknown profile or run."},
    409: {"model": ErrorOut, "description": "The profile is in use (the holder is named)."},
    422: {"model": ErrorOut, "description": "Bad input, one line saying what to fix."},
}
ProfileName = Annotated[str, Path(min_length=1, max_length=64, description="A profile name.")]


class _AuthError(Exception):
    pass


def _status(exc: FleetwrightError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ProfileBusyError):
        return 409
    if isinstance(exc, UserError | ConfigurationError):  # e.g. headed with no display
        return 422
    return 503 if exc.retryable else 500


def _name(name: str) -> str:
    try:
        return check_name(name)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def create_app(token: str, *, registry: OpenedRegistry | None = None) -> FastAPI:
    """The API app; `token` is what clients send as `Authorization: Bearer <token>`."""
    if len(token) < 16:
        raise ValidationError("the API token is shorter than 16 characters; use a longer one")
    opened_here = registry or OpenedRegistry()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await opened_here.close()

    app = FastAPI(
        title="Fleetwright local API",
        version="1",
        description=__doc__,
        lifespan=lifespan,
        responses=_ERRORS,
    )

    async def authorised(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        given = creds.credentials if creds is not None else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise _AuthError

    @app.exception_handler(_AuthError)
    async def _auth(_r: Request, _e: _AuthError) -> JSONResponse:
        return JSONResponse(
            {"detail": "missing or wrong API token; send Authorization: Bearer <token>"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(FleetwrightError)
    async def _fleetwright(_r: Request, exc: FleetwrightError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, 422)

    auth = [Depends(authorised)]

    def opened_out(name: str) -> OpenedOut | None:
        opened = opened_here.get(name)
        if opened is not None:
            return OpenedOut.model_validate(opened.as_dict())
        from fleetwright.sessions.open_control import read_record

        record = read_record(name)
        return OpenedOut.model_validate(record) if record is not None else None

    def profile_out(record: dict[str, Any]) -> ProfileOut:
        return ProfileOut.model_validate({**record, "open": opened_out(record["name"])})

    @app.post("/profiles/{name}/start", dependencies=auth, response_model=OpenedOut)
    async def start(name: ProfileName, body: StartIn | None = None) -> OpenedOut:
        """Open the profile (lease, fingerprint, proxy, saved state); returns its CDP endpoint."""
        body = body or StartIn()
        timeout = timedelta(seconds=body.timeout) if body.timeout is not None else None
        opened = await opened_here.start(
            _name(name), headed=body.headed, port=body.port, timeout=timeout
        )
        return OpenedOut.model_validate(opened.as_dict())

    @app.post("/profiles/{name}/stop", dependencies=auth, response_model=ClosedOut)
    async def stop(name: ProfileName) -> ClosedOut:
        """Close the profile: its state is saved as a new version and its lease released."""
        name = _name(name)
        if opened_here.get(name) is not None:
            return ClosedOut.model_validate(await opened_here.stop(name))
        from fleetwright.sessions.open_control import request_close

        return ClosedOut.model_validate(await asyncio.to_thread(request_close, name))

    @app.get("/profiles", dependencies=auth, response_model=list[ProfileOut])
    async def profiles() -> list[ProfileOut]:
        """Every profile, with its lease holder and, when open on this machine, its endpoint."""
        from fleetwright.registry import list_profiles

        records = await asyncio.to_thread(list_profiles)
        return [profile_out(r) for r in records]

    @app.get("/profiles/{name}", dependencies=auth, response_model=ProfileOut)
    async def profile(name: ProfileName) -> ProfileOut:
        """One profile, with its lease holder and, when open on this machine, its endpoint."""
        from fleetwright.registry import get_profile

        return profile_out(await asyncio.to_thread(get_profile, _name(name)))

    @app.post("/runs", dependencies=auth, response_model=RunOut, status_code=201)
    async def run(body: RunIn) -> RunOut:
        """Start a command on a selection of profiles through the run-command deployment."""
        from fleetwright.api import arun_command

        fleet = await arun_command(
            body.command,
            body.profiles,
            tags=body.tags,
            all_active=body.all_active,
            params=body.params,
            version=body.version,
            via="deployment",
            wait=False,
        )
        return RunOut.model_validate(fleet.as_dict())

    @app.get("/runs/{run_id}", dependencies=auth, response_model=RunOut)
    async def read_run(
        run_id: Annotated[str, Path(min_length=1, max_length=100, description="A run id.")],
    ) -> RunOut:
        """A run's state and its sessions' outcomes."""
        from fleetwright.api import aget_run

        fleet = await aget_run(run_id)
        if fleet.name is None and not fleet.sessions:
            raise NotFoundError(f"no run {run_id!r}; see `fleetwright run list`")
        return RunOut.model_validate(fleet.as_dict())

    return app
