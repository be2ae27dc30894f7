"""The outbox: ids of dispatched outbox rows (the idempotency keys of their effects)."""

import sqlalchemy as sa
from alembic import op

revision = "0100_outbox"
down_revision = "0001_foundation"
branch_labels = ("outbox",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_dispatched",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_outbox_dispatched_at", "outbox_dispatched", ["at"])


def downgrade() -> None:
    op.drop_table("outbox_dispatched")
