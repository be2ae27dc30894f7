"""Compliance: waivers of rules, and the check result of each published version."""

import sqlalchemy as sa
from alembic import op

revision = "0300_compliance"
down_revision = "0001_foundation"
branch_labels = ("compliance",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_waivers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(32),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("app", sa.String(40), nullable=False),
        sa.Column("rule", sa.String(80), nullable=False),
        sa.Column("path", sa.String(300), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_compliance_waivers_tenant_id_app", "compliance_waivers", ["tenant_id", "app"]
    )
    op.create_table(
        "compliance_checks",
        sa.Column(
            "tenant_id",
            sa.String(32),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("app", sa.String(40), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("packs", sa.JSON, nullable=False),
        sa.Column("violations", sa.JSON, nullable=False),
        sa.Column("by", sa.String(200), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "compliance_fixes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(32),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("app", sa.String(40), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("patch", sa.JSON, nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("by", sa.String(200), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_compliance_fixes_tenant_id_app", "compliance_fixes", ["tenant_id", "app"])


def downgrade() -> None:
    op.drop_table("compliance_fixes")
    op.drop_table("compliance_checks")
    op.drop_table("compliance_waivers")
