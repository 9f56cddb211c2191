"""HTTP requests through a proxy (http, https, socks5) with failures turned into ProxyErrors.

Shared by health probes and exit-IP checks. Error messages name the proxy and its server,
never its password. When a failure could be the endpoint's as well as the proxy's (an error
status, a garbage answer, a timeout or a refused tunnel), the endpoint is asked directly: if it
fails there too, the failure is a ProbeEndpointError and the proxy is not blamed.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import httpx

from fleetwright.errors import ProbeEndpointError, ProxyAuthError, ProxyError, redact_url
from fleetwright.specs import ProxySpec

__all__ = ["IPInfo", "fetch_exit_ip", "fetch_ip_info", "proxy_client", "proxy_url"]

_AUTH_WORDS = ("auth", "407", "credential", "username", "password")


@dataclass(frozen=True)
class IPInfo:
    """What an IP-info endpoint says about the address a request came from."""

    ip: str
    country: str | None = None
    timezone: str | None = None


def proxy_url(spec: ProxySpec) -> str:
    """The proxy URL with credentials, for clients; never log it."""
    auth = ""
    if spec.username:
        auth = quote(spec.username, safe="")
        if spec.password:
            auth += ":" + quote(spec.password, safe="")
        auth += "@"
    return f"{spec.scheme}://{auth}{spec.host}:{spec.port}"


def proxy_client(spec: ProxySpec, *, timeout: timedelta) -> httpx.AsyncClient:
    """An httpx client whose every request goes through `spec`."""
    return httpx.AsyncClient(
        proxy=proxy_url(spec),
        timeout=timeout.total_seconds(),
        trust_env=False,
        follow_redirects=False,
        headers={"Cache-Control": "no-store"},
    )


def _where(spec: ProxySpec) -> str:
    return f"proxy {spec.name!r} ({spec.server})"


def _auth_error(spec: ProxySpec, status: str) -> ProxyAuthError:
    user = f" for user {spec.username!r}" if spec.username else " (no credentials given)"
    return ProxyAuthError(
        f"{_where(spec)} refused the credentials{user} ({status}); "
        "fix the username/password in its Proxy block"
    )


async def _direct_failure(
    url: str, timeout: float, parse: Callable[[httpx.Response], object] | None
) -> str | None:
    """Why `url` fails when asked directly (no proxy), or None when it answers well."""
    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            response = await client.get(url, headers={"Cache-Control": "no-store"})
    except httpx.HTTPError as exc:
        return redact_url(str(exc)) or type(exc).__name__
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    if parse is not None and parse(response) is None:
        return f"no usable answer in {_snippet(response.text)!r}"
    return None


async def _blame(
    client: httpx.AsyncClient,
    spec: ProxySpec,
    url: str,
    what: str,
    error: ProxyError,
    parse: Callable[[httpx.Response], object] | None = None,
) -> ProxyError:
    """`error` when the endpoint works directly (the proxy is at fault); else a
    ProbeEndpointError naming the endpoint."""
    reason = await _direct_failure(url, float(client.timeout.read or 10), parse)
    if reason is None:
        return error
    return ProbeEndpointError(
        f"the {what} {url} fails directly too ({reason}), so {_where(spec)} was not judged; "
        f"fix the endpoint or point the probe at another one (through the proxy: "
        f"{error.message})"
    )


async def _get(
    client: httpx.AsyncClient,
    spec: ProxySpec,
    url: str,
    what: str,
    parse: Callable[[httpx.Response], object] | None = None,
) -> httpx.Response:
    try:
        response = await client.get(url)
    except httpx.ProxyError as exc:
        text = redact_url(str(exc))
        if any(word in text.lower() for word in _AUTH_WORDS):
            raise _auth_error(spec, text.splitlines()[0] if text else "auth failed") from None
        error = ProxyError(f"{_where(spec)} failed to reach the {what} {url}: {text}")
        raise await _blame(client, spec, url, what, error, parse) from None
    except httpx.TimeoutException:
        error = ProxyError(
            f"{_where(spec)} did not answer within {client.timeout.read}s while reaching the "
            f"{what} {url}; check that the proxy is up"
        )
        raise await _blame(client, spec, url, what, error, parse) from None
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
        reason = redact_url(str(exc)) or type(exc).__name__
        raise ProxyError(
            f"{_where(spec)} is unreachable or dropped the connection ({reason}); "
            "check that it is running and the host/port are right"
        ) from None
    except httpx.HTTPError as exc:
        raise ProxyError(
            f"{_where(spec)}: request to the {what} {url} failed ({type(exc).__name__})"
        ) from None
    # tinyproxy answers 401 (not 407) to wrong credentials on plain-HTTP requests.
    if response.status_code == 407 or (
        response.status_code == 401 and "proxy" in response.headers.get("server", "").lower()
    ):
        raise _auth_error(spec, f"HTTP {response.status_code}")
    if response.status_code != 200:
        error = ProxyError(
            f"{_where(spec)}: the {what} {url} answered HTTP {response.status_code} "
            "through the proxy; check the URL and that the proxy can reach it"
        )
        raise await _blame(client, spec, url, what, error, parse)
    return response


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return (flat[:60] + "…") if len(flat) > 60 else flat


def _parse_ip(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


async def fetch_exit_ip(client: httpx.AsyncClient, spec: ProxySpec, echo_url: str) -> str:
    """The exit IP the echo endpoint sees: JSON {"ip": ...} or the bare address as text."""
    response = await _get(client, spec, echo_url, "IP-echo endpoint", _echo_ip)
    ip = _echo_ip(response)
    if ip is None:
        text = response.text
        raise await _blame(
            client,
            spec,
            echo_url,
            "IP-echo endpoint",
            ProxyError(
                f"the IP-echo endpoint {echo_url} answered garbage through {_where(spec)} "
                f"(no IP address in {_snippet(text)!r}); point the echo URL at a service that "
                'returns the caller\'s address as text or JSON {"ip": ...}'
            ),
            _echo_ip,
        )
    return ip


def _echo_ip(response: httpx.Response) -> str | None:
    """The address in an IP-echo answer: the bare address as text, or JSON {"ip": ...}."""
    text = response.text
    ip = _parse_ip(text)
    if ip is None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        ip = _parse_ip(data.get("ip") if isinstance(data, dict) else None)
    return ip


def _info_ip(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return _parse_ip(data.get("ip")) if isinstance(data, dict) else None


async def fetch_ip_info(client: httpx.AsyncClient, spec: ProxySpec, info_url: str) -> IPInfo:
    """Exit IP, country and timezone from an IP-info endpoint (JSON {"ip","country","timezone"})."""
    response = await _get(client, spec, info_url, "IP-info endpoint", _info_ip)
    try:
        data = response.json()
    except ValueError:
        data = None
    ip = _parse_ip(data.get("ip") if isinstance(data, dict) else None)
    if not isinstance(data, dict) or ip is None:
        error = ProxyError(
            f"the IP-info endpoint {info_url} answered garbage through {_where(spec)} "
            f"({_snippet(response.text)!r}); it must return JSON with ip, country and timezone"
        )
        raise await _blame(client, spec, info_url, "IP-info endpoint", error, _info_ip)
    country = data.get("country") or data.get("country_code")
    timezone = data.get("timezone")
    return IPInfo(
        ip=ip,
        country=country.upper() if isinstance(country, str) and country else None,
        timezone=timezone if isinstance(timezone, str) and timezone else None,
    )
