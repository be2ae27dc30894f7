"""Workflows: an instance's business key (the workflow's `key`, or its record's id), which the
task inbox shows beside each task."""

import sqlalchemy as sa
from alembic import op

revision = "0602_workflow_business_key"
down_revision = "0601_workflow_cron"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("wf_instances", sa.Column("business_key", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wf_instances") as batch:
        batch.drop_column("business_key")
