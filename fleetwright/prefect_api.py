"""A quick check that the Prefect API answers, before a call that would retry for a minute.

Prefect's client retries a refused connection with back-off for ~50 s and then raises an
httpx error with a long traceback. Entry points that need the API ask it once, with a short
timeout, and turn silence into one PrefectUnavailableError line naming the URL and the fix.
A server that refuses the client's credential (HTTP 401) gets one line too.
"""

from __future__ import annotations

import base64
import ssl
from typing import Any

import httpx

from fleetwright.errors import PrefectUnavailableError, redact_url

__all__ = ["aensure_prefect_api", "api_client_options"]


def api_client_options() -> dict[str, Any]:
    """httpx options that reach the Prefect API as Prefect's own client does: its credential
    (PREFECT_API_AUTH_STRING, else PREFECT_API_KEY) and its TLS trust
    (PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY)."""
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    headers: dict[str, str] = {}
    if api.auth_string is not None and api.auth_string.get_secret_value():
        token = base64.b64encode(api.auth_string.get_secret_value().encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif api.key is not None and api.key.get_secret_value():
        headers["Authorization"] = f"Bearer {api.key.get_secret_value()}"
    verify: ssl.SSLContext | bool = True
    if api.tls_insecure_skip_verify:
        verify = False
    elif api.ssl_cert_file:
        verify = ssl.create_default_context(cafile=api.ssl_cert_file)
    return {"headers": headers, "verify": verify}


async def aensure_prefect_api(*, timeout: float = 5.0) -> str:
    """The API URL in use, once its /health answers and it accepts the client's credential;
    PrefectUnavailableError otherwise."""
    from fleetwright.settings import apply_prefect_settings

    url = apply_prefect_settings().rstrip("/")
    options = api_client_options()
    denied = False
    try:
        async with httpx.AsyncClient(timeout=timeout, **options) as client:
            response = await client.get(f"{url}/health")
            if response.status_code == 200:
                # /health answers anyone; an authenticated route says whether we may go on
                denied = (await client.get(f"{url}/admin/version")).status_code == 401
    except (httpx.HTTPError, OSError) as exc:
        problem = type(exc).__name__
    else:
        if response.status_code == 200 and not denied:
            return url
        if denied:
            raise PrefectUnavailableError(
                f"the Prefect API at {redact_url(url)} refused "
                + ("the credential" if options["headers"] else "a request without credential")
                + " (HTTP 401); for the server `fleetwright up` runs the credential is in "
                "<FLEETWRIGHT_HOME>/prefect-api-auth (restart `up` after a rotation); for a "
                "server of your own set PREFECT_API_AUTH_STRING or PREFECT_API_KEY",
                retryable=False,
            )
        problem = f"HTTP {response.status_code}"
    raise PrefectUnavailableError(
        f"no Prefect API answers at {redact_url(url)} ({problem}); start it with "
        "`fleetwright up` or point FLEETWRIGHT_PREFECT_API_URL / FLEETWRIGHT_PREFECT_PORT at it"
    )
