"""Map Playwright's exceptions onto Fleetwright's error hierarchy."""

from __future__ import annotations

from fleetwright.errors import (
    BrowserCrashError,
    FleetwrightError,
    NavigationTimeoutError,
    ProxyAuthError,
    ProxyError,
    SessionError,
    StepError,
    redact_url,
)

__all__ = ["is_closed_error", "map_playwright_error"]

_CLOSED_MARKERS = (
    "has been closed",
    "browser has disconnected",
    "target closed",
    "page crashed",
    "crashed",
    "connection closed",
    "browser closed",
)

_NAVIGATION_WORDS = ("goto", "navigat", "load_state", "wait_for_url", "reload", "go_back")


def is_closed_error(exc: BaseException) -> bool:
    """Whether `exc` says the page, context or browser went away."""
    from playwright.async_api import Error as PlaywrightError

    if type(exc).__name__ == "TargetClosedError":
        return True
    if not isinstance(exc, PlaywrightError):
        return False
    text = str(exc).lower()
    return any(marker in text for marker in _CLOSED_MARKERS)


def _first_line(exc: BaseException) -> str:
    text = redact_url(str(exc)).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


_PROXY_AUTH = ("ERR_INVALID_AUTH_CREDENTIALS", "ERR_PROXY_AUTH")
_PROXY_DOWN = ("ERR_PROXY_CONNECTION_FAILED", "ERR_TUNNEL_CONNECTION_FAILED", "ERR_PROXY_")


def map_playwright_error(
    exc: BaseException, *, profile: str, crashed: bool = False, proxy: str | None = None
) -> FleetwrightError | None:
    """The Fleetwright error for a Playwright exception, or None if `exc` is not one."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeoutError

    if isinstance(exc, FleetwrightError):
        return exc
    if not isinstance(exc, PlaywrightError):
        return None
    if crashed or is_closed_error(exc):
        return BrowserCrashError(
            f"The browser for profile {profile!r} crashed or closed mid-session "
            f"({_first_line(exc)}); the run can be retried"
        )
    line = _first_line(exc)
    if proxy is not None and any(code in line for code in _PROXY_AUTH):
        return ProxyAuthError(
            f"Proxy {proxy} refused the credentials of profile {profile!r}; "
            "check the username and password of its proxy"
        )
    if proxy is not None and any(code in line for code in _PROXY_DOWN):
        return ProxyError(
            f"Proxy {proxy} of profile {profile!r} failed ({line}); "
            "check the proxy is up or pick another"
        )
    if isinstance(exc, PlaywrightTimeoutError):
        if any(word in line.lower() for word in _NAVIGATION_WORDS):
            return NavigationTimeoutError(
                f"Profile {profile!r}: a page did not load in time ({line}); "
                "check the site is reachable or raise the timeout"
            )
        return StepError(
            f"Profile {profile!r}: timed out waiting ({line}); check the selector or the page"
        )
    return SessionError(f"Profile {profile!r}: browser error: {line}")
