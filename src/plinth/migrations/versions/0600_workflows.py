"""Workflows: instances, steps, tasks, the job queue and side-effect records."""

from alembic import op

revision = "0600_workflows"
down_revision = "0001_foundation"
branch_labels = ("workflows",)
depends_on = None

NAMES = ("wf_instances", "wf_steps", "wf_tasks", "wf_jobs", "wf_effects", "wf_schedules")


def upgrade() -> None:
    from plinth.workflows import store

    for table in (store.instances, store.steps, store.tasks, store.jobs, store.effects,
                  store.schedules):
        table.create(op.get_bind())


def downgrade() -> None:
    for name in reversed(NAMES):
        op.drop_table(name)
