"""state blobs: storage-mode profile states kept in the catalogue (state backend `database`)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 20:00:00

A ProfileState row whose path is `db:<checksum>` points at the blob of its profile with that
checksum; rows written by the `local` and `object` backends keep their file path or object key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "state_blobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_state_blobs_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_state_blobs")),
        sa.UniqueConstraint(
            "profile_id", "checksum", name=op.f("uq_state_blobs_profile_id_checksum")
        ),
    )


def downgrade() -> None:
    op.drop_table("state_blobs")
