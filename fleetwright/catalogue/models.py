"""The catalogue's tables: typed SQLAlchemy 2 models, portable between SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "Command",
    "ExitIP",
    "Profile",
    "ProfileService",
    "ProfileState",
    "ProfileTag",
    "Proxy",
    "ProxyPool",
    "Run",
    "Service",
    "StateBlob",
    "SyncCursor",
    "WebhookDelivery",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class ProxyPool(Base):
    """A named group of proxies (by provider, country, kind) that profiles draw from."""

    __tablename__ = "proxy_pools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rotation_cursor: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    proxies: Mapped[list[Proxy]] = relationship(back_populates="pool")


class Proxy(Base):
    """An upstream proxy. The password lives in its Proxy block, never here."""

    __tablename__ = "proxies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    scheme: Mapped[str] = mapped_column(String(8))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(255))
    secret_ref: Mapped[str | None] = mapped_column(
        String(128), doc="Name of the Proxy block that holds the password."
    )
    block_document_id: Mapped[str | None] = mapped_column(String(36))
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("proxy_pools.id", ondelete="SET NULL"))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    max_sessions: Mapped[int | None] = mapped_column(Integer)
    # health
    health: Mapped[str] = mapped_column(String(16), default="unknown")
    error_score: Mapped[float] = mapped_column(Float, default=0.0)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_checked_at: Mapped[datetime | None]
    last_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_exit_ip: Mapped[str | None] = mapped_column(String(64))
    last_country: Mapped[str | None] = mapped_column(String(8))
    last_error: Mapped[str | None] = mapped_column(Text)
    quarantined_until: Mapped[datetime | None]
    quarantine_count: Mapped[int] = mapped_column(Integer, default=0)
    sessions_total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    pool: Mapped[ProxyPool | None] = relationship(back_populates="proxies")

    __table_args__ = (Index(None, "health"), Index(None, "pool_id"))


class Profile(Base):
    """A persistent browser identity: fingerprint, proxy assignment, state and lease.

    The row is the source of truth for the profile's spec (see docs/architecture.md). Its
    BrowserProfile block is a projection for the Prefect UI: `revision` counts spec changes,
    `projected_revision` is the revision the block was last written with (the outbox: rows
    with `revision > projected_revision` wait for their block), and `projected` is the spec
    the block held then, the base against which a UI edit is merged.
    """

    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    block_document_id: Mapped[str | None] = mapped_column(String(36))
    block_name: Mapped[str | None] = mapped_column(String(128))
    fingerprint: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state_mode: Mapped[str] = mapped_column(String(16), default="storage")
    status: Mapped[str] = mapped_column(String(16), default="active")
    proxy_id: Mapped[int | None] = mapped_column(ForeignKey("proxies.id", ondelete="SET NULL"))
    proxy_pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("proxy_pools.id", ondelete="SET NULL")
    )
    bound_proxy_id: Mapped[int | None] = mapped_column(
        ForeignKey("proxies.id", ondelete="SET NULL"),
        doc="The proxy a sticky pool draw or a failover bound the profile to (not the "
        "assignment: `proxy_id`/`proxy_pool_id` are what the user assigned).",
    )
    proxy_policy: Mapped[str] = mapped_column(String(16), default="sticky")
    proxy_failover: Mapped[bool] = mapped_column(Boolean, default=False)
    ip_check: Mapped[str] = mapped_column(String(8), default="off")
    country: Mapped[str | None] = mapped_column(String(8))
    notes: Mapped[str] = mapped_column(Text, default="")
    state_version: Mapped[int] = mapped_column(Integer, default=0)
    lease_holder: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    lease_proxy_id: Mapped[int | None] = mapped_column(
        Integer, doc="The proxy the lease holder's session goes through (per-proxy caps)."
    )
    revision: Mapped[int] = mapped_column(Integer, default=1)
    projected_revision: Mapped[int] = mapped_column(Integer, default=0)
    projected: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    proxy: Mapped[Proxy | None] = relationship(foreign_keys=[proxy_id])
    bound_proxy: Mapped[Proxy | None] = relationship(foreign_keys=[bound_proxy_id])
    proxy_pool: Mapped[ProxyPool | None] = relationship(foreign_keys=[proxy_pool_id])
    tag_rows: Mapped[list[ProfileTag]] = relationship(
        back_populates="profile", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (
        Index(None, "status"),
        Index(None, "proxy_id"),
        Index(None, "lease_proxy_id", "lease_expires_at"),
        Index("ix_profiles_outbox", "projected_revision", "revision"),
    )

    @property
    def tags(self) -> list[str]:
        return sorted(t.tag for t in self.tag_rows)

    def set_tags(self, tags: list[str]) -> None:
        wanted = set(tags)
        self.tag_rows = [t for t in self.tag_rows if t.tag in wanted]
        have = {t.tag for t in self.tag_rows}
        self.tag_rows.extend(ProfileTag(tag=t) for t in sorted(wanted - have))


class ProfileTag(Base):
    __tablename__ = "profile_tags"

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)

    profile: Mapped[Profile] = relationship(back_populates="tag_rows")

    __table_args__ = (Index(None, "tag", "profile_id"),)


class Service(Base):
    """A service account (GitHub, OpenAI) whose credentials live in a block."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(64))
    block_name: Mapped[str] = mapped_column(String(128))
    block_document_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("kind", "account"),)


class ProfileService(Base):
    """Which service accounts a profile acts as."""

    __tablename__ = "profile_services"

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )


class Command(Base):
    """A named, versioned automation and where it came from."""

    __tablename__ = "commands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(1024), default="")
    checksum: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("name", "version"), Index(None, "name"))


class Run(Base):
    """One session: a command on a profile, with Prefect ids, outcome and artifacts."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profiles.id", ondelete="SET NULL"))
    profile_name: Mapped[str] = mapped_column(String(64))
    command_name: Mapped[str] = mapped_column(String(64))
    command_version: Mapped[str] = mapped_column(String(32), default="")
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    task_run_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16), default="running")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(String(64))
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifacts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    proxy_name: Mapped[str | None] = mapped_column(String(64))
    exit_ip: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(64))
    tokens_used: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index(None, "flow_run_id", "profile_id"),
        Index(None, "status"),
        Index(None, "profile_id", "started_at"),
    )


class ProfileState(Base):
    """One saved version of a profile's state; the profile points at its current one."""

    __tablename__ = "profile_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    checksum: Mapped[str] = mapped_column(String(64), default="")
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("profile_id", "version"),)


class StateBlob(Base):
    """A storage-mode state kept in the catalogue itself (state backend `database`).

    Content-addressed per profile: a ProfileState row whose path is `db:<checksum>` points
    at the blob of its profile with that checksum."""

    __tablename__ = "state_blobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    checksum: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("profile_id", "checksum"),)


class ExitIP(Base):
    """An exit IP (and its country) a profile was seen with through a proxy."""

    __tablename__ = "exit_ips"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    proxy_id: Mapped[int | None] = mapped_column(ForeignKey("proxies.id", ondelete="SET NULL"))
    ip: Mapped[str] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(8))
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index(None, "profile_id", "seen_at"),)


class SyncCursor(Base):
    """Where a reader of Prefect's event stream stopped (the block-edit reconcile)."""

    __tablename__ = "sync_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """A GitHub webhook delivery id the receiver has taken: claimed while its event is
    emitted, confirmed once it is out; refused as a replay until `expires_at`."""

    __tablename__ = "webhook_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime] = mapped_column(index=True)
