"""The hand-written app's table: the shape of Plinth's `order` entity (system columns, then the
four fields) and the one index its list query needs, as a developer would declare them."""

from __future__ import annotations

POSTGRESQL = [
    """CREATE TABLE IF NOT EXISTS orders (
        id varchar(32) PRIMARY KEY,
        version integer NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        created_by varchar(200),
        updated_by varchar(200),
        name varchar(100) NOT NULL,
        amount numeric(12, 2),
        status varchar(16) NOT NULL DEFAULT 'open',
        qty bigint
    )""",
    "CREATE INDEX IF NOT EXISTS orders_status_amount ON orders (status, amount)",
]

SQLITE = [
    """CREATE TABLE IF NOT EXISTS orders (
        id text PRIMARY KEY,
        version integer NOT NULL,
        created_at text NOT NULL,
        updated_at text NOT NULL,
        created_by text,
        updated_by text,
        name text NOT NULL,
        amount numeric,
        status text NOT NULL DEFAULT 'open',
        qty integer
    )""",
    "CREATE INDEX IF NOT EXISTS orders_status_amount ON orders (status, amount)",
]

COLUMNS = (
    "id",
    "version",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "name",
    "amount",
    "status",
    "qty",
)
