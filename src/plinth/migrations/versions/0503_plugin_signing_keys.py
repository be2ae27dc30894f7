"""Extensions: the signing key pinned per plugin name (set by its first signed version)."""

import sqlalchemy as sa
from alembic import op

revision = "0503_plugin_signing_keys"
down_revision = "0502_plugin_ui_modules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    keys = op.create_table(
        "plugin_keys",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pinned_by", sa.String(255), nullable=False),
    )
    # Plugins already published signed keep the key of their first signed version.
    versions = sa.table(
        "plugin_versions",
        sa.column("name", sa.String),
        sa.column("public_key", sa.String),
        sa.column("published_at", sa.DateTime(timezone=True)),
    )
    rows = op.get_bind().execute(
        sa.select(versions.c.name, versions.c.public_key, versions.c.published_at)
        .where(versions.c.public_key.is_not(None))
        .order_by(versions.c.published_at)
    )
    first: dict[str, dict[str, object]] = {}
    for row in rows:
        first.setdefault(
            row.name,
            {
                "name": row.name,
                "public_key": row.public_key,
                "pinned_at": row.published_at,
                "pinned_by": "migration",
            },
        )
    if first:
        op.bulk_insert(keys, list(first.values()))


def downgrade() -> None:
    op.drop_table("plugin_keys")
