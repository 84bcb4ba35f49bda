"""Registration mail in the ledger: the registration and its status change join the unique key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_OLD_KEY = ["event_id", "revision", "organisation_id", "kind"]


def upgrade() -> None:
    # Not null with a default: NULLs are distinct in a unique key, which would let invitations
    # (no registration) be recorded twice.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("registration_id", sa.String(36), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("sequence", sa.Integer, nullable=False, server_default="0"))
        batch.drop_constraint("uq_deliveries_once", type_="unique")
        batch.create_unique_constraint(
            "uq_deliveries_once", [*_OLD_KEY, "registration_id", "sequence"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE registration_id <> ''")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_once", type_="unique")
        batch.create_unique_constraint("uq_deliveries_once", _OLD_KEY)
        batch.drop_column("sequence")
        batch.drop_column("registration_id")
