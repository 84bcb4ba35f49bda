"""The audit log (append-only; purged after AUDIT_RETENTION_DAYS).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from alembic import op

from tacso_shared.audit import AUDIT_INDEXES, AUDIT_TABLE, audit_columns

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(AUDIT_TABLE, *audit_columns())
    for name, columns in AUDIT_INDEXES:
        op.create_index(name, AUDIT_TABLE, list(columns))


def downgrade() -> None:
    op.drop_table(AUDIT_TABLE)
