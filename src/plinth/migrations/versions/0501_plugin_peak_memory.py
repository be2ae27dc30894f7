"""Extensions: peak linear memory of each metered plugin call."""

import sqlalchemy as sa
from alembic import op

revision = "0501_plugin_peak_memory"
down_revision = "0500_extensions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("plugin_calls", sa.Column("peak_memory", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("plugin_calls", "peak_memory")
