"""Delivery leases, the suppression list and event snapshots.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from tacso_shared.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(36), nullable=True))
        batch.add_column(sa.Column("claimed_at", UTCDateTime(), nullable=True))
    op.create_table(
        "suppressions",
        sa.Column("email", sa.String(254), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "event_snapshots",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("event_snapshots")
    op.drop_table("suppressions")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("claim_token")
