"""Extensions: plugin registry, installations, kv and metering."""

import sqlalchemy as sa
from alembic import op

revision = "0500_extensions"
down_revision = "0001_foundation"
branch_labels = ("extensions",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant(primary: bool = True) -> sa.Column:
    return sa.Column(
        "tenant_id",
        sa.String(32),
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        primary_key=primary,
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "plugin_versions",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("publisher", sa.String(63), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("signature", sa.String(128), nullable=True),
        sa.Column("public_key", sa.String(64), nullable=True),
        _ts("published_at"),
    )
    op.create_table(
        "plugin_installs",
        _tenant(),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("pinned", sa.Boolean, nullable=False),
        sa.Column("capabilities", sa.JSON, nullable=False),
        sa.Column("http_hosts", sa.JSON, nullable=False),
        sa.Column("limits", sa.JSON, nullable=False),
        _ts("installed_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "plugin_kv",
        _tenant(),
        sa.Column("plugin", sa.String(63), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "plugin_calls",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(primary=False),
        sa.Column("plugin", sa.String(63), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("point", sa.String(40), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(60), nullable=False),
        sa.Column("fuel", sa.BigInteger, nullable=False),
        sa.Column("wall_ms", sa.Float, nullable=False),
        sa.Column("memory_limit", sa.BigInteger, nullable=False),
        sa.Column("cold", sa.Boolean, nullable=False),
        _ts("at"),
    )
    op.create_index("ix_plugin_calls_tenant_id", "plugin_calls", ["tenant_id", "at"])


def downgrade() -> None:
    for table in ("plugin_calls", "plugin_kv", "plugin_installs", "plugin_versions"):
        op.drop_table(table)
