"""The Proxy block: where a proxy's password lives (encrypted by the Prefect server)."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from fleetwright.specs import ProxyScheme, ProxySpec

__all__ = ["Proxy"]


class Proxy(Block):
    """An upstream proxy with its credentials. The catalogue keeps everything but the password."""

    _block_type_name = "Fleetwright Proxy"
    _block_type_slug = "fleetwright-proxy"
    _logo_url = None
    _description = "A Fleetwright proxy: scheme, host, port and credentials."

    name: str = Field(description="The proxy's unique name.")
    scheme: ProxyScheme = "http"
    host: str
    port: int
    username: str | None = None
    password: SecretStr | None = None
    pool: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    max_sessions: int | None = None

    @classmethod
    def from_spec(cls, spec: ProxySpec) -> Proxy:
        return cls(
            name=spec.name,
            scheme=spec.scheme,
            host=spec.host,
            port=spec.port,
            username=spec.username,
            password=SecretStr(spec.password) if spec.password else None,
            pool=spec.pool,
            labels=dict(spec.labels),
            max_sessions=spec.max_sessions,
        )

    def to_spec(self) -> ProxySpec:
        return ProxySpec(
            name=self.name,
            scheme=self.scheme,
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            pool=self.pool,
            labels=dict(self.labels),
            max_sessions=self.max_sessions,
        )
