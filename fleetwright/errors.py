"""Fleetwright's errors: one hierarchy, each error saying what failed, for what, and what to do.

    FleetwrightError                    base; `retryable` says whether a retry can help
    ├── UserError                       bad input; the CLI prints one line and exits 2
    │   ├── ValidationError             a value that breaks a rule (name, port, timezone, ...)
    │   ├── NotFoundError               unknown profile / proxy / tag / command / service
    │   ├── AlreadyExistsError          a duplicate name
    │   ├── ImportFileError             a malformed import file
    │   ├── CommandSpecError            a command file or step that does not validate
    │   └── TemplateError               a template naming an unknown value
    ├── ConfigurationError              the installation is not usable (no Chromium, ...)
    ├── CatalogueUnavailableError       the catalogue database does not answer      (retryable)
    ├── PrefectUnavailableError         the Prefect API does not answer              (retryable)
    ├── ProfileBusyError                another run holds the profile's lease        (retryable)
    ├── StateError                      profile state cannot be read or written
    ├── SessionError                    a browser session failed
    │   ├── NavigationTimeoutError      a page did not load in time                  (retryable)
    │   ├── BrowserCrashError           the browser or page crashed                  (retryable)
    │   ├── StepError                   a step failed (selector missing, ...)
    │   └── AssertionStepError          an `assert` step did not hold
    ├── ProxyError                      a proxy failed (connect, auth, exit IP)      (retryable)
    │   ├── ProxyAuthError              the proxy refused the credentials
    │   ├── ProxyQuarantinedError       the proxy is quarantined
    │   └── ProbeEndpointError          the echo/info endpoint fails, not the proxy  (retryable)
    └── ServiceError                    GitHub / OpenAI call failed
        ├── ServiceUnavailableError     5xx, timeout, connection error               (retryable)
        ├── RateLimitedError            429/403 rate limit                           (retryable)
        ├── CircuitOpenError            the breaker is open; try after the cool-down
        └── OutputSchemaError           a model's output broke the declared schema

Messages never contain secrets; helpers here strip passwords from URLs.
"""

from __future__ import annotations

import re

__all__ = [
    "AlreadyExistsError",
    "AssertionStepError",
    "BrowserCrashError",
    "CatalogueUnavailableError",
    "CircuitOpenError",
    "CommandSpecError",
    "ConfigurationError",
    "FleetwrightError",
    "ImportFileError",
    "NavigationTimeoutError",
    "NotFoundError",
    "OutputSchemaError",
    "PrefectUnavailableError",
    "ProbeEndpointError",
    "ProfileBusyError",
    "ProxyAuthError",
    "ProxyError",
    "ProxyQuarantinedError",
    "RateLimitedError",
    "ServiceError",
    "ServiceUnavailableError",
    "SessionError",
    "StateError",
    "StepError",
    "TemplateError",
    "UserError",
    "ValidationError",
    "is_retryable",
    "redact_url",
]


class FleetwrightError(Exception):
    """Base of every error Fleetwright raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class UserError(FleetwrightError):
    """The input is wrong; fixing the input fixes it."""


class ValidationError(UserError):
    pass


class NotFoundError(UserError):
    pass


class AlreadyExistsError(UserError):
    pass


class ImportFileError(UserError):
    pass


class CommandSpecError(UserError):
    pass


class TemplateError(UserError):
    pass


class ConfigurationError(FleetwrightError):
    pass


class CatalogueUnavailableError(FleetwrightError):
    retryable = True


class PrefectUnavailableError(FleetwrightError):
    retryable = True


class ProfileBusyError(FleetwrightError):
    retryable = True


class StateError(FleetwrightError):
    pass


class SessionError(FleetwrightError):
    pass


class NavigationTimeoutError(SessionError):
    retryable = True


class BrowserCrashError(SessionError):
    retryable = True


class StepError(SessionError):
    pass


class AssertionStepError(StepError):
    pass


class ProxyError(FleetwrightError):
    retryable = True


class ProxyAuthError(ProxyError):
    retryable = False


class ProxyQuarantinedError(ProxyError):
    retryable = False


class ProbeEndpointError(ProxyError):
    """A probe failed because its IP-echo/info endpoint fails (directly too): the proxy is
    not to blame and its health is left as it was."""

    retryable = True


class ServiceError(FleetwrightError):
    pass


class ServiceUnavailableError(ServiceError):
    retryable = True


class RateLimitedError(ServiceError):
    retryable = True


class CircuitOpenError(ServiceError):
    retryable = False


class OutputSchemaError(ServiceError):
    pass


def is_retryable(exc: BaseException) -> bool:
    """Whether retrying the work that raised `exc` can help (the engine's classification)."""
    if isinstance(exc, FleetwrightError):
        return exc.retryable
    return isinstance(exc, TimeoutError | ConnectionError)


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")


def redact_url(text: str) -> str:
    """Replace every `user:password@` in `text` with `user:***@`."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
