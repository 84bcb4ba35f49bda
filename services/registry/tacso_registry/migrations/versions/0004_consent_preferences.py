"""Organisations can change: active flag, erasure tombstone, contacts; consent records and
mailing preferences (opt-outs of everything, of a kind of mail, of a topic).

Existing organisations with ``mailing_consent`` get a consent record of basis
``legitimate_interest``, source ``api``, recorded by ``migration-0004`` (how they were added).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from tacso_shared.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("erased_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("contacts", sa.JSON, nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("opted_out_all", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "consents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "organisation_id",
            sa.String(36),
            sa.ForeignKey("organisations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("basis", sa.String(32), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("text_version", sa.String(64), nullable=True),
        sa.Column("actor", sa.String(100), nullable=True),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_consents_organisation", "consents", ["organisation_id", "recorded_at"])
    op.create_table(
        "preference_optouts",
        sa.Column(
            "organisation_id",
            sa.String(36),
            sa.ForeignKey("organisations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("category", sa.String(8), primary_key=True),
        sa.Column("value", sa.String(64), primary_key=True),
    )
    connection = op.get_bind()
    organisations = sa.table(
        "organisations", sa.column("id", sa.String), sa.column("mailing_consent", sa.Boolean)
    )
    consents = sa.table(
        "consents",
        sa.column("id", sa.String),
        sa.column("organisation_id", sa.String),
        sa.column("basis", sa.String),
        sa.column("source", sa.String),
        sa.column("recorded_at", UTCDateTime()),
        sa.column("actor", sa.String),
    )
    now = datetime.now(UTC)
    ids = connection.execute(
        sa.select(organisations.c.id).where(organisations.c.mailing_consent.is_(True))
    ).scalars()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "organisation_id": organisation_id,
            "basis": "legitimate_interest",
            "source": "api",
            "recorded_at": now,
            "actor": "migration-0004",
        }
        for organisation_id in ids
    ]
    if rows:
        op.bulk_insert(consents, rows)


def downgrade() -> None:
    op.drop_table("preference_optouts")
    op.drop_table("consents")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("opted_out_all")
        batch.drop_column("contacts")
        batch.drop_column("erased_at")
        batch.drop_column("active")
