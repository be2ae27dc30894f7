"""Workflow tables: instances, steps (the timeline), tasks, jobs (the queue) and effects."""

from __future__ import annotations

import sqlalchemy as sa

from plinth.db import platform_metadata

instances = sa.Table(
    "wf_instances",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
    sa.Column("app", sa.String(40), nullable=False),
    sa.Column("workflow", sa.String(63), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),  # pinned definition version
    sa.Column("definition", sa.JSON, nullable=False),  # the workflow document it runs
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("vars", sa.JSON, nullable=False),
    sa.Column("record", sa.JSON, nullable=True),
    sa.Column("business_key", sa.String(200), nullable=True),  # shown with its tasks
    sa.Column("joins", sa.JSON, nullable=False),
    sa.Column("parent_step", sa.String(32), nullable=True),
    sa.Column("started_by", sa.String(200), nullable=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
)

steps = sa.Table(
    "wf_steps",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("instance_id", sa.String(32), nullable=False, index=True),
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

tasks = sa.Table(
    "wf_tasks",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
    sa.Column("instance_id", sa.String(32), nullable=False, index=True),
    sa.Column("step_id", sa.String(32), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | done | cancelled
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

jobs = sa.Table(
    "wf_jobs",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("instance_id", sa.String(32), nullable=False, index=True),
    sa.Column("step_id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # run | resume
    sa.Column("signal", sa.JSON, nullable=True),
    sa.Column("status", sa.String(8), nullable=False),  # queued | running | done
    sa.Column("run_at", sa.Float, nullable=False),
    sa.Column("locked_until", sa.Float, nullable=True),
    sa.Column("lease", sa.String(32), nullable=True),
    sa.Index("ix_wf_jobs_due", "status", "run_at"),
)

effects = sa.Table(
    "wf_effects",
    platform_metadata,
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("at", sa.Float, nullable=False),
)

schedules = sa.Table(
    "wf_schedules",
    platform_metadata,
    sa.Column("id", sa.String(200), primary_key=True),  # tenant:app:workflow:start index
    sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
    sa.Column("app", sa.String(40), nullable=False),
    sa.Column("workflow", sa.String(63), nullable=False),
    sa.Column("every", sa.Float, nullable=True),  # seconds, or None for a cron schedule
    sa.Column("cron", sa.String(200), nullable=True),
    sa.Column("timezone", sa.String(64), nullable=True),  # IANA name; None is UTC
    sa.Column("next_at", sa.Float, nullable=False, index=True),
)
