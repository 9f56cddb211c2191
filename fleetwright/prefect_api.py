"""A quick check that the Prefect API answers, before a call that would retry for a minute.

Prefect's client retries a refused connection with back-off for ~50 s and then raises an
httpx error with a long traceback. Entry points that need the API ask it once, with a short
timeout, and turn silence into one PrefectUnavailableError line naming the URL and the fix.
"""

from __future__ import annotations

import httpx

from fleetwright.errors import PrefectUnavailableError, redact_url

__all__ = ["aensure_prefect_api"]


async def aensure_prefect_api(*, timeout: float = 5.0) -> str:
    """The API URL in use, once its /health answers; PrefectUnavailableError otherwise."""
    from fleetwright.settings import apply_prefect_settings

    url = apply_prefect_settings().rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(f"{url}/health")
    except (httpx.HTTPError, OSError) as exc:
        problem = type(exc).__name__
    else:
        if response.status_code == 200:
            return url
        problem = f"HTTP {response.status_code}"
    raise PrefectUnavailableError(
        f"no Prefect API answers at {redact_url(url)} ({problem}); start it with "
        "`fleetwright up` or point FLEETWRIGHT_PREFECT_API_URL / FLEETWRIGHT_PREFECT_PORT at it"
    )
