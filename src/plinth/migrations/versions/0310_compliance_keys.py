"""Compliance: field-encryption keys (tenant keys wrapped by the master key, subject keys)."""

import sqlalchemy as sa
from alembic import op

revision = "0310_compliance_keys"
down_revision = "0300_compliance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_tenant_keys",
        sa.Column(
            "tenant_id",
            sa.String(32),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("master_id", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "compliance_subject_keys",
        sa.Column(
            "tenant_id",
            sa.String(32),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("ref", sa.String(64), primary_key=True),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("compliance_subject_keys")
    op.drop_table("compliance_tenant_keys")
