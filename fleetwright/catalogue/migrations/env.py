"""Alembic environment: runs on the connection Fleetwright hands it (SQLite or Postgres)."""

from __future__ import annotations

from alembic import context

from fleetwright.catalogue.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - Fleetwright always passes a connection
    raise RuntimeError("Run migrations through `fleetwright db upgrade`.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
