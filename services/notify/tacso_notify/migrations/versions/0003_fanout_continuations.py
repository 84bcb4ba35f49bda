"""Fan-out continuations: a fan-out is a chain of page tasks any worker can take.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from tacso_shared.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fanout_continuations",
        sa.Column("chain", sa.String(200), primary_key=True),
        sa.Column("after", sa.String(200), primary_key=True),
        sa.Column("published", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fanout_continuations")
