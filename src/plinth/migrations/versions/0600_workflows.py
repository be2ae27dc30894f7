"""Workflows: instances, steps, tasks, the job queue, side-effect records and schedules.

Tables are spelled out here (not imported from `workflows.store`) so this migration stays what
it was when later ones change the store.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0600_workflows"
down_revision = "0001_foundation"
branch_labels = ("workflows",)
depends_on = None


def _id(name: str = "id", length: int = 32, **kw: Any) -> sa.Column:
    return sa.Column(name, sa.String(length), **kw)


def upgrade() -> None:
    op.create_table(
        "wf_instances",
        _id(primary_key=True),
        _id("tenant_id", nullable=False, index=True),
        sa.Column("app", sa.String(40), nullable=False),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("vars", sa.JSON, nullable=False),
        sa.Column("record", sa.JSON, nullable=True),
        sa.Column("joins", sa.JSON, nullable=False),
        _id("parent_step", nullable=True),
        sa.Column("started_by", sa.String(200), nullable=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_table(
        "wf_steps",
        _id(primary_key=True),
        _id("instance_id", nullable=False, index=True),
        sa.Column("node", sa.String(63), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("input", sa.JSON, nullable=True),
        sa.Column("output", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("by", sa.String(200), nullable=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_table(
        "wf_tasks",
        _id(primary_key=True),
        _id("tenant_id", nullable=False, index=True),
        _id("instance_id", nullable=False, index=True),
        _id("step_id", nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.JSON, nullable=False),
        sa.Column("form", sa.JSON, nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("data", sa.JSON, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_table(
        "wf_jobs",
        _id(primary_key=True),
        _id("instance_id", nullable=False, index=True),
        _id("step_id", nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("signal", sa.JSON, nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("run_at", sa.Float, nullable=False),
        sa.Column("locked_until", sa.Float, nullable=True),
        _id("lease", nullable=True),
    )
    op.create_index("ix_wf_jobs_due", "wf_jobs", ["status", "run_at"])
    op.create_table(
        "wf_effects",
        _id("key", 80, primary_key=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "wf_schedules",
        _id(length=200, primary_key=True),
        _id("tenant_id", nullable=False, index=True),
        sa.Column("app", sa.String(40), nullable=False),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("every", sa.Float, nullable=False),
        sa.Column("next_at", sa.Float, nullable=False, index=True),
    )


def downgrade() -> None:
    for name in ("wf_schedules", "wf_effects", "wf_jobs", "wf_tasks", "wf_steps", "wf_instances"):
        op.drop_table(name)
