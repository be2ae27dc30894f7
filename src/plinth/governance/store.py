"""Governance tables: the audit ledger (append-only, hash-chained per tenant)."""

from __future__ import annotations

import sqlalchemy as sa

from plinth.db import Timestamp, platform_metadata

audit_events = sa.Table(
    "audit_events",
    platform_metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("tenant_key", sa.String(32), nullable=False),  # tenant id, or "_platform"
    sa.Column("n", sa.BigInteger, nullable=False),  # position in this tenant's chain
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(200), nullable=True),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("resource", sa.String(300), nullable=True),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # The ledger key that MACs this event (`chain.LedgerKey.id`); NULL: an event written
    # before the keyed chain, linked by plain SHA-256.
    sa.Column("key_id", sa.String(16), nullable=True),
    sa.UniqueConstraint("tenant_key", "n"),
)

# Signed (tenant, count, head) statements, written in the transaction of each batch of events.
# Append-only like the events; `verify` checks each against the chain, so cutting events from
# the end of a chain needs cutting the checkpoints too (and an anchor outside the database
# catches that).
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    platform_metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("tenant_key", sa.String(32), nullable=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("head", sa.String(64), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),  # ISO text: it is part of what is signed
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
    sa.UniqueConstraint("tenant_key", "n"),
)

# Ledger keys of earlier master keys, sealed by the current master key, so events and
# checkpoints made before a master rotation still verify. The current key is never stored.
audit_keys = sa.Table(
    "audit_keys",
    platform_metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

users = sa.Table(
    "users",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("username", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=True),  # None: OIDC-only user
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("attrs", sa.JSON, nullable=False),
    sa.Column("oidc_subject", sa.String(300), nullable=True),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", Timestamp, nullable=False),
    # When an administrator last ended the user's sessions (disable, reset, revoke): access
    # tokens issued before it are refused.
    sa.Column("sessions_ended_at", Timestamp, nullable=True),
    sa.UniqueConstraint("tenant_id", "username"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.String(32), nullable=False),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp),
)

# One-time tokens that let a person set their password: an invite (a user created without a
# password) or a reset an administrator started. Stored as SHA-256 hashes, like API tokens.
password_tokens = sa.Table(
    "password_tokens",
    platform_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.String(32), nullable=False),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("purpose", sa.String(20), nullable=False),  # "invite" | "reset"
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("used_at", Timestamp),
)
