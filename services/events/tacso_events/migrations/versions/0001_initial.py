"""Events, their topics, and the outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from tacso_shared.outbox import OUTBOX_PENDING_INDEX, outbox_columns

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("venue_name", sa.String(200), nullable=True),
        sa.Column("venue_address", sa.String(300), nullable=True),
        sa.Column("venue_city", sa.String(100), nullable=True),
        sa.Column("online_url", sa.String(2000), nullable=True),
        sa.Column("capacity", sa.Integer, nullable=True),
        sa.Column("organiser_id", sa.String(64), nullable=False),
        sa.Column("organiser_name", sa.String(200), nullable=False),
        sa.Column("organiser_email", sa.String(254), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_events_status_starts_at_id", "events", ["status", "starts_at", "id"])
    op.create_index(
        "ix_events_country_status_starts_at", "events", ["country", "status", "starts_at"]
    )
    op.create_table(
        "event_topics",
        sa.Column(
            "event_id",
            sa.String(36),
            sa.ForeignKey("events.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("topic", sa.String(64), primary_key=True),
    )
    op.create_index("ix_event_topics_topic", "event_topics", ["topic", "event_id"])
    op.create_table("outbox", *outbox_columns())
    op.create_index(OUTBOX_PENDING_INDEX, "outbox", ["published_at", "created_at"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("event_topics")
    op.drop_table("events")
