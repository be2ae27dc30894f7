"""Tables of the integration layer: the vault, custom domains, gateway settings, webhooks."""

from __future__ import annotations

import sqlalchemy as sa

from plinth.db import platform_metadata


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


# One data key per tenant and version, wrapped (AES-GCM) by the master key.
data_keys = sa.Table(
    "integration_data_keys",
    platform_metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("master_id", sa.String(16), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    _ts("created_at"),
)

secrets = sa.Table(
    "integration_secrets",
    platform_metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("key_version", sa.Integer, nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
)

domains = sa.Table(
    "integration_domains",
    platform_metadata,
    sa.Column("host", sa.String(253), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
    _ts("created_at"),
)

# Gateway settings per tenant ("tenant") and per app ("app:<slug>"): limits, CORS, timeout.
gateway_settings = sa.Table(
    "integration_gateway",
    platform_metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("scope", sa.String(60), primary_key=True),
    sa.Column("config", sa.JSON, nullable=False),
    _ts("updated_at"),
)

deliveries = sa.Table(
    "integration_deliveries",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("app", sa.String(40), nullable=False),
    sa.Column("connector", sa.String(63), nullable=False),
    sa.Column("topic", sa.String(100), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    # pending | retrying (waiting for run_at) | delivered | dead (attempts exhausted)
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
    # The queue: due at run_at (epoch seconds); a claim holds a lease until locked_until.
    sa.Column("run_at", sa.Float, nullable=True),
    sa.Column("locked_until", sa.Float, nullable=True),
    sa.Column("lease", sa.String(32), nullable=True),
    sa.Index("ix_integration_deliveries_tenant", "tenant_id", "app", "connector", "created_at"),
    sa.Index("ix_integration_deliveries_due", "status", "run_at"),
)

# Delivery ids a webhook_in endpoint has accepted: a replayed delivery is refused.
receipts = sa.Table(
    "integration_receipts",
    platform_metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("endpoint", sa.String(110), primary_key=True),
    sa.Column("delivery_id", sa.String(100), primary_key=True),
    _ts("received_at"),
)
