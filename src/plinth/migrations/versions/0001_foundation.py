"""Foundation: tenants, API tokens, apps, drafts and versions."""

import sqlalchemy as sa
from alembic import op

revision = "0001_foundation"
down_revision = None
branch_labels = ("foundation",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("slug", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("region", sa.String(40), nullable=False, server_default="default"),
        sa.Column("settings", sa.JSON, nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id", ondelete="CASCADE")),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=True),
        _ts("created_at"),
        _ts("last_used_at", True),
        _ts("expires_at", True),
        _ts("revoked_at", True),
    )
    op.create_table(
        "apps",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(32),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("slug", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("active_version", sa.Integer, nullable=True),
        _ts("created_at"),
        sa.UniqueConstraint("tenant_id", "slug"),
    )
    op.create_table(
        "drafts",
        sa.Column(
            "app_id",
            sa.String(32),
            sa.ForeignKey("apps.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
        _ts("updated_at"),
    )
    op.create_table(
        "versions",
        sa.Column(
            "app_id",
            sa.String(32),
            sa.ForeignKey("apps.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.String(200), nullable=True),
        _ts("created_at"),
    )


def downgrade() -> None:
    for table in ("versions", "drafts", "apps", "api_tokens", "tenants"):
        op.drop_table(table)
