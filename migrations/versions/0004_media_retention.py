"""media retention: jobs.media_purged_at and the retention task's index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("media_purged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_jobs_media_kept",
        "jobs",
        ["completed_at"],
        unique=False,
        postgresql_where=sa.text("media_purged_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_jobs_media_kept", table_name="jobs", postgresql_where=sa.text("media_purged_at IS NULL")
    )
    op.drop_column("jobs", "media_purged_at")
