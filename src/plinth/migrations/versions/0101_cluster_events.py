"""The cluster change log: events every process must hear, when there is no Redis."""

import sqlalchemy as sa
from alembic import op

revision = "0101_cluster_events"
down_revision = "0100_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("node", sa.String(16), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_cluster_events_at", "cluster_events", ["at"])


def downgrade() -> None:
    op.drop_table("cluster_events")
