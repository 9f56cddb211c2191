"""The session Prefect server answers, and clients in this process talk to it."""

from __future__ import annotations

from prefect.client.orchestration import get_client


async def test_client_reaches_session_server(prefect_api: str) -> None:
    async with get_client() as client:
        assert str(client.api_url).rstrip("/") == prefect_api
        response = await client.hello()
        assert response.status_code == 200
