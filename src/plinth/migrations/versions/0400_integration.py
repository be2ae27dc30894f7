"""Integration: secrets vault, custom domains, gateway settings, webhook deliveries/receipts."""

import sqlalchemy as sa
from alembic import op

revision = "0400_integration"
down_revision = "0001_foundation"
branch_labels = ("integration",)
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant(primary_key: bool = True) -> sa.Column:
    return sa.Column(
        "tenant_id",
        sa.String(32),
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "integration_data_keys",
        _tenant(),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("master_id", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "integration_secrets",
        _tenant(),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "integration_domains",
        sa.Column("host", sa.String(253), primary_key=True),
        _tenant(primary_key=False),
        _ts("created_at"),
    )
    op.create_index("ix_integration_domains_tenant_id", "integration_domains", ["tenant_id"])
    op.create_table(
        "integration_gateway",
        _tenant(),
        sa.Column("scope", sa.String(60), primary_key=True),
        sa.Column("config", sa.JSON, nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "integration_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        _tenant(primary_key=False),
        sa.Column("app", sa.String(40), nullable=False),
        sa.Column("connector", sa.String(63), nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index(
        "ix_integration_deliveries_tenant",
        "integration_deliveries",
        ["tenant_id", "app", "connector", "created_at"],
    )
    op.create_table(
        "integration_receipts",
        _tenant(),
        sa.Column("endpoint", sa.String(110), primary_key=True),
        sa.Column("delivery_id", sa.String(100), primary_key=True),
        _ts("received_at"),
    )


def downgrade() -> None:
    for table in (
        "integration_receipts",
        "integration_deliveries",
        "integration_gateway",
        "integration_domains",
        "integration_secrets",
        "integration_data_keys",
    ):
        op.drop_table(table)
