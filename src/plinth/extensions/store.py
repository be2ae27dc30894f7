"""Extension tables: published versions, per-tenant installations, kv, and metering."""

from __future__ import annotations

import sqlalchemy as sa

from plinth.db import platform_metadata


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


plugin_versions = sa.Table(
    "plugin_versions",
    platform_metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("publisher", sa.String(63), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("manifest", sa.Text, nullable=False),
    sa.Column("signature", sa.String(128), nullable=True),
    sa.Column("public_key", sa.String(64), nullable=True),
    _ts("published_at"),
    # UI modules of its components: {path: {sha256, size}} (migration 0502)
    sa.Column("modules", sa.JSON, nullable=True),
)

# The key every version of a plugin name must be signed with: pinned by its first signed
# version, changed only by an explicit, audited rotation (migration 0503).
plugin_keys = sa.Table(
    "plugin_keys",
    platform_metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("public_key", sa.String(64), nullable=False),
    _ts("pinned_at"),
    sa.Column("pinned_by", sa.String(255), nullable=False),
)

plugin_installs = sa.Table(
    "plugin_installs",
    platform_metadata,
    sa.Column(
        "tenant_id",
        sa.String(32),
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("pinned", sa.Boolean, nullable=False, default=False),
    sa.Column("capabilities", sa.JSON, nullable=False),
    sa.Column("http_hosts", sa.JSON, nullable=False),
    sa.Column("limits", sa.JSON, nullable=False),
    _ts("installed_at"),
    _ts("updated_at"),
)

plugin_kv = sa.Table(
    "plugin_kv",
    platform_metadata,
    sa.Column(
        "tenant_id",
        sa.String(32),
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("plugin", sa.String(63), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

plugin_calls = sa.Table(
    "plugin_calls",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "tenant_id",
        sa.String(32),
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("plugin", sa.String(63), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("point", sa.String(40), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(60), nullable=False),
    sa.Column("fuel", sa.BigInteger, nullable=False),
    sa.Column("wall_ms", sa.Float, nullable=False),
    sa.Column("memory_limit", sa.BigInteger, nullable=False),
    sa.Column("peak_memory", sa.BigInteger, nullable=True),  # migration 0501
    sa.Column("cold", sa.Boolean, nullable=False),
    _ts("at"),
)
