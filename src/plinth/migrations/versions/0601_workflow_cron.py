"""Workflows: cron schedules (`cron` and `timezone` beside `every`, which becomes optional)."""

import sqlalchemy as sa
from alembic import op

revision = "0601_workflow_cron"
down_revision = "0600_workflows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot change a column's nullability in place (the table is copied).
    with op.batch_alter_table("wf_schedules") as batch:
        batch.add_column(sa.Column("cron", sa.String(200), nullable=True))
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))
        batch.alter_column("every", existing_type=sa.Float, nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("wf_schedules") as batch:
        batch.drop_column("timezone")
        batch.drop_column("cron")
        batch.alter_column("every", existing_type=sa.Float, nullable=False)
