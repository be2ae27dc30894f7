"""Governance: when a user's sessions were last ended (access tokens issued before are refused)."""

import sqlalchemy as sa
from alembic import op

revision = "0421_user_sessions_ended"
down_revision = "0420_password_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("sessions_ended_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("users", "sessions_ended_at")
