"""Event lifecycle: registration mirror, newest revision per event, notices, reminder offsets.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from tacso_shared.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registration_states",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("organisation_id", sa.String(36), primary_key=True),
        sa.Column("registration_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seats", sa.Integer, nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "event_revisions",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "event_notices",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    # A reminder is owed once per offset: the offset joins the ledger's unique key.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("reminder_offset", sa.String(16), nullable=False, server_default="")
        )
        batch.drop_constraint("uq_deliveries_once", type_="unique")
        batch.create_unique_constraint(
            "uq_deliveries_once",
            [
                "event_id",
                "revision",
                "organisation_id",
                "kind",
                "registration_id",
                "sequence",
                "reminder_offset",
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_once", type_="unique")
        batch.create_unique_constraint(
            "uq_deliveries_once",
            ["event_id", "revision", "organisation_id", "kind", "registration_id", "sequence"],
        )
        batch.drop_column("reminder_offset")
    op.drop_table("event_notices")
    op.drop_table("event_revisions")
    op.drop_table("registration_states")
