"""Extensions: the ES modules of plugin UI components (custom elements), by hash."""

import sqlalchemy as sa
from alembic import op

revision = "0502_plugin_ui_modules"
down_revision = "0501_plugin_peak_memory"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("plugin_versions", sa.Column("modules", sa.JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("plugin_versions", "modules")
