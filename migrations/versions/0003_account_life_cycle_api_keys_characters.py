"""account life cycle, api keys, characters

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 07:22:39.660589
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "characters",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("cameo_id", sa.Text(), nullable=False),
        sa.Column("character_id", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    op.create_index("ix_characters_owner_created", "characters", ["owner", "created_at"], unique=False)
    op.add_column("accounts", sa.Column("redirect_uri", sa.Text(), nullable=True))
    op.add_column(
        "accounts", sa.Column("character_concurrency", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column("accounts", sa.Column("today_date", sa.Date(), nullable=True))
    op.add_column(
        "accounts", sa.Column("today_video_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "accounts", sa.Column("today_image_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "accounts", sa.Column("today_error_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("accounts", sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("accounts", sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("accounts", sa.Column("refresh_error", sa.Text(), nullable=True))
    op.add_column("accounts", sa.Column("refresh_not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("accounts", "refresh_not_before")
    op.drop_column("accounts", "refresh_error")
    op.drop_column("accounts", "refreshed_at")
    op.drop_column("accounts", "last_error_at")
    op.drop_column("accounts", "today_error_count")
    op.drop_column("accounts", "today_image_count")
    op.drop_column("accounts", "today_video_count")
    op.drop_column("accounts", "today_date")
    op.drop_column("accounts", "character_concurrency")
    op.drop_column("accounts", "redirect_uri")
    op.drop_index("ix_characters_owner_created", table_name="characters")
    op.drop_table("characters")
    op.drop_table("api_keys")
