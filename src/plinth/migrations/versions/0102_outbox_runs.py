"""The outbox: one row per running outbox worker (a row left behind marks an unclean stop)."""

import sqlalchemy as sa
from alembic import op

revision = "0102_outbox_runs"
down_revision = "0101_cluster_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("seen_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outbox_runs")
