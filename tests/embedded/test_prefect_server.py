"""The session Prefect server answers, and clients in this process talk to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client


async def test_client_reaches_session_server(prefect_api: str) -> None:
    async with get_client() as client:
        assert str(client.api_url).rstrip("/") == prefect_api
        response = await client.hello()
        assert response.status_code == 200


def test_several_api_workers_need_postgres_and_redis(tmp_path: Path) -> None:
    from fleetwright.embedded.prefect_server import LocalPrefectServer
    from fleetwright.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="redis_url"):
        LocalPrefectServer(prefect_home=tmp_path, workers=2)
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        LocalPrefectServer(
            prefect_home=tmp_path,
            workers=2,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
            redis_url="redis://127.0.0.1:6379/0",
        )
    server = LocalPrefectServer(
        prefect_home=tmp_path,
        workers=2,
        database_url="postgresql+asyncpg://root@127.0.0.1:5432/x",
        redis_url="redis://127.0.0.1:6379/0",
    )
    assert server.workers == 2 and server.services is None
