"""Organisations, their topics, and the outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from tacso_shared.db import UTCDateTime
from tacso_shared.outbox import OUTBOX_PENDING_INDEX, outbox_columns

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("mailing_consent", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("email", name="uq_organisations_email"),
    )
    op.create_index("ix_organisations_country_kind_id", "organisations", ["country", "kind", "id"])
    op.create_table(
        "organisation_topics",
        sa.Column(
            "organisation_id",
            sa.String(36),
            sa.ForeignKey("organisations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("topic", sa.String(64), primary_key=True),
    )
    op.create_index(
        "ix_organisation_topics_topic", "organisation_topics", ["topic", "organisation_id"]
    )
    op.create_table("outbox", *outbox_columns())
    op.create_index(OUTBOX_PENDING_INDEX, "outbox", ["published_at", "created_at"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("organisation_topics")
    op.drop_table("organisations")
