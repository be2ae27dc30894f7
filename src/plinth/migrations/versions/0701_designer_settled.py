"""Designer: how far into its update log each REST draft is settled."""

import sqlalchemy as sa
from alembic import op

revision = "0701_designer_settled"
down_revision = "0700_designer"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "designer_snapshots",
        sa.Column("settled_upto", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("designer_snapshots", "settled_upto")
