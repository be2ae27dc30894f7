"""Designer: the update log and snapshots of co-edited drafts."""

import sqlalchemy as sa
from alembic import op

revision = "0700_designer"
down_revision = "0001_foundation"
branch_labels = ("designer",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "designer_updates",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("data", sa.LargeBinary),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_designer_updates_app", "designer_updates", ["app_id", "id"])
    op.create_table(
        "designer_snapshots",
        sa.Column("app_id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("upto", sa.BigInteger, nullable=False),
        sa.Column("draft_revision", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("designer_snapshots")
    op.drop_index("ix_designer_updates_app", "designer_updates")
    op.drop_table("designer_updates")
