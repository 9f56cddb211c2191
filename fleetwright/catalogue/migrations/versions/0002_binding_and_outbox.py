"""proxy binding apart from the assignment; block projection outbox; event cursors

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 16:50:00

A sticky pool draw or a failover used to overwrite `proxy_id` (the assignment) while
`proxy_pool_id` stayed set, a shape the profile spec refuses. Such rows move the drawn proxy
to `bound_proxy_id` and keep the pool as their assignment. Every existing row is marked as
waiting for its block (`projected_revision` 0 < `revision` 1), so the next reconcile rewrites
the BrowserProfile blocks in the current shape.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bound_proxy_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("projected_revision", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("projected", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_profiles_bound_proxy_id_proxies"),
            "proxies",
            ["bound_proxy_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index("ix_profiles_outbox", ["projected_revision", "revision"])
    op.execute(
        "UPDATE profiles SET bound_proxy_id = proxy_id, proxy_id = NULL "
        "WHERE proxy_id IS NOT NULL AND proxy_pool_id IS NOT NULL"
    )
    op.create_table(
        "sync_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_cursors")),
    )


def downgrade() -> None:
    op.drop_table("sync_cursors")
    op.execute(
        "UPDATE profiles SET proxy_id = bound_proxy_id "
        "WHERE bound_proxy_id IS NOT NULL AND proxy_pool_id IS NULL AND proxy_id IS NULL"
    )
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_profiles_outbox")
        batch_op.drop_constraint(
            batch_op.f("fk_profiles_bound_proxy_id_proxies"), type_="foreignkey"
        )
        batch_op.drop_column("projected")
        batch_op.drop_column("projected_revision")
        batch_op.drop_column("revision")
        batch_op.drop_column("bound_proxy_id")
