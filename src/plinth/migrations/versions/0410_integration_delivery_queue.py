"""Integration: webhook deliveries become a durable queue (due time, lease, dead state).

Pending and retrying deliveries survive a restart: a worker (embedded or `plinth worker`)
claims due rows under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on
SQLite) instead of an in-process task holding them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0410_integration_delivery_queue"
down_revision = "0400_integration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("integration_deliveries", sa.Column("run_at", sa.Float, nullable=True))
    op.add_column("integration_deliveries", sa.Column("locked_until", sa.Float, nullable=True))
    op.add_column("integration_deliveries", sa.Column("lease", sa.String(32), nullable=True))
    # Rows written before the queue existed were attempted in-process: "failed" is now "dead".
    op.execute("UPDATE integration_deliveries SET status = 'dead' WHERE status = 'failed'")
    op.execute("UPDATE integration_deliveries SET run_at = 0 WHERE status = 'pending'")
    op.create_index("ix_integration_deliveries_due", "integration_deliveries", ["status", "run_at"])


def downgrade() -> None:
    op.drop_index("ix_integration_deliveries_due", "integration_deliveries")
    for column in ("lease", "locked_until", "run_at"):
        op.drop_column("integration_deliveries", column)
