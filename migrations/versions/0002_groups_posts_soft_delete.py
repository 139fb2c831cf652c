"""job groups, posts, soft delete, request hash

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:39:30.072516
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("request_hash", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("group_id", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("post_id", sa.Text(), nullable=True))
    # Renamed, not replaced: images keep their file in the same columns as videos.
    op.alter_column("jobs", "video_key", new_column_name="media_key")
    op.alter_column("jobs", "video_bytes", new_column_name="media_bytes")
    op.add_column("jobs", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_jobs_group_id"), "jobs", ["group_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_group_id"), table_name="jobs")
    op.drop_column("jobs", "deleted_at")
    op.alter_column("jobs", "media_bytes", new_column_name="video_bytes")
    op.alter_column("jobs", "media_key", new_column_name="video_key")
    op.drop_column("jobs", "post_id")
    op.drop_column("jobs", "group_id")
    op.drop_column("jobs", "request_hash")
