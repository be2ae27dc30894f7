"""The SQL table of an entity: system columns, then one column per field."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa

from plinth.db import Timestamp
from plinth.runtime import types

SYSTEM_COLUMNS = ("id", "version", "created_at", "updated_at", "created_by", "updated_by")


def table_name(app_slug: str, entity: str) -> str:
    """Tables of all apps of a tenant share its schema/file, so the app prefixes the name."""
    return f"{app_slug}__{entity}"


def index_name(app_slug: str, entity_id: str, field_ids: tuple[str, ...]) -> str:
    """Index names hang on stable ids, so renames never orphan them (and stay short)."""
    digest = hashlib.sha1("/".join((app_slug, entity_id, *field_ids)).encode()).hexdigest()
    return f"ix_{digest[:20]}"


def system_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(200)),
        sa.Column("updated_by", sa.String(200)),
    ]


def field_column(name: str, spec: dict[str, Any]) -> sa.Column[Any]:
    return sa.Column(name, types.column_type(spec), nullable=True)


def build(
    metadata: sa.MetaData, app_slug: str, entity: str, doc: dict[str, Any], schema: str | None
) -> sa.Table:
    """The Table of an entity (for statements; DDL goes through the migration plan)."""
    columns = system_columns() + [field_column(n, s) for n, s in doc.get("fields", {}).items()]
    return sa.Table(table_name(app_slug, entity), metadata, *columns, schema=schema)
