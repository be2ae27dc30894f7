"""Applying a migration plan with Alembic `Operations`, inside the caller's transaction.

Runs synchronously on a connection (through `AsyncConnection.run_sync`). SQLite cannot alter
columns in place, so column changes go through Alembic's batch mode (copy-and-move). Type
changes convert each value in Python with the same rules the API uses, so both databases agree
on what converts, and the rows that cannot are named in the error.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from plinth.errors import Fault, PublishRefused, ValidationFailed
from plinth.runtime import tables, types
from plinth.runtime.plan import Op

MAX_NAMED_ROWS = 20
# (entity, field) -> record id -> the plaintext JSON value of a sealed value
Opened = dict[tuple[str, str], dict[str, Any]]


def apply(
    conn: sa.Connection,
    ops: list[Op],
    app_slug: str,
    old: dict[str, Any],
    new: dict[str, Any],
    schema: str | None,
    allow_destructive: bool,
    opened: Opened | None = None,
) -> list[str]:
    """Apply `ops`; returns what was done. Raises (and the caller rolls back) on refusal.

    `opened`: the plaintext of sealed values of fields that stop being encrypted, by
    (entity, field) and record id (decrypting needs the keyring, which is async: the caller
    opens them on this same transaction before)."""
    if schema is not None:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    op = Operations(MigrationContext.configure(conn))
    new_entities = new.get("entities", {})
    old_entities = old.get("entities", {})
    done: list[str] = []
    for step in ops:
        entity_doc = new_entities.get(step.entity) or old_entities.get(step.entity) or {}
        eid = entity_doc.get("id", step.entity)
        table = tables.table_name(app_slug, step.entity)
        if step.destructive and not allow_destructive:
            _refuse_if_data(conn, step, app_slug, schema)
        if step.kind == "create_table":
            op.create_table(
                table,
                *tables.system_columns(),
                *[tables.field_column(n, s) for n, s in step.spec["fields"].items()],
                schema=schema,
            )
            # The default list order (oldest first) reads this index instead of sorting.
            op.create_index(
                tables.index_name(app_slug, eid, ("#created_at",)),
                table,
                _sort_columns(conn, ["created_at", "id"]),
                schema=schema,
            )
        elif step.kind == "drop_table":
            op.drop_table(table, schema=schema)
        elif step.kind == "rename_table":
            op.rename_table(tables.table_name(app_slug, step.old), table, schema=schema)
        elif step.kind == "add_column":
            op.add_column(table, tables.field_column(step.field, step.spec), schema=schema)
            if "default" in step.spec and step.spec["default"] is not None:
                # Existing rows take the default, as if they had been written after the change.
                t = sa.table(
                    table, sa.column(step.field, types.column_type(step.spec)), schema=schema
                )
                conn.execute(
                    t.update().values({step.field: types.to_db(step.spec, step.spec["default"])})
                )
        elif step.kind == "drop_column":
            with op.batch_alter_table(table, schema=schema) as batch:
                batch.drop_column(step.field)
        elif step.kind == "rename_column":
            with op.batch_alter_table(table, schema=schema) as batch:
                batch.alter_column(step.old, new_column_name=step.field)
        elif step.kind == "alter_column":
            _convert(conn, op, table, step, schema, (opened or {}).get((step.entity, step.field)))
        elif step.kind == "create_index":
            fields = {s["id"]: n for n, s in entity_doc.get("fields", {}).items()}
            names = [fields[i] for i in step.index]
            op.create_index(
                tables.index_name(app_slug, eid, step.index),
                table,
                # A plain index also serves lists sorted on its fields (after equality on the
                # ones before): it ends with the id tiebreaker and orders nulls as lists do.
                names if step.unique else _sort_columns(conn, [*names, "id"]),
                unique=step.unique,
                schema=schema,
            )
        elif step.kind == "drop_index":
            op.drop_index(
                tables.index_name(app_slug, eid, step.index),
                table_name=table,
                schema=schema,
                if_exists=True,
            )
        done.append(step.describe())
    return done


def _sort_columns(conn: sa.Connection, names: list[str]) -> list[Any]:
    """Index columns in the order lists sort (`RecordService._sort_keys`): nulls first going
    up, so a backward scan gives descending with nulls last. SQLite orders nulls first
    already (and has no NULLS in CREATE INDEX); PostgreSQL needs it said."""
    if conn.dialect.name != "postgresql":
        return names
    quote = conn.dialect.identifier_preparer.quote
    return [sa.text(f"{quote(n)} NULLS FIRST") for n in names]


def _refuse_if_data(conn: sa.Connection, step: Op, app_slug: str, schema: str | None) -> None:
    table = tables.table_name(app_slug, step.entity)
    if step.kind == "drop_table":
        t = sa.table(table, sa.column("id"), schema=schema)
        count = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
    else:
        # a narrowing change on a column with no values destroys nothing either
        name = step.field
        t = sa.table(table, sa.column(name), schema=schema)
        count = conn.execute(
            sa.select(sa.func.count()).select_from(t).where(t.c[name].is_not(None))
        ).scalar_one()
    if count:
        raise PublishRefused(
            f"Refusing to {step.describe()}: {count} record{'s' if count != 1 else ''} would "
            "lose data. Publish with allow_destructive: true to do it anyway",
            path=f"entities.{step.entity}" + (f".fields.{step.field}" if step.field else ""),
            extra={"destructive": [step.describe()], "rows": count},
        )


def _convert(
    conn: sa.Connection,
    op: Operations,
    table: str,
    step: Op,
    schema: str | None,
    opened: dict[str, Any] | None = None,
) -> None:
    """Change a column's type, converting every value or naming the rows that cannot (a
    sealed value whose plaintext is in `opened` converts from that)."""
    old_t = sa.table(
        table,
        sa.column("id"),
        sa.column(step.field, types.column_type(step.old_spec)),
        schema=schema,
    )
    converted: list[dict[str, Any]] = []
    bad: list[Fault] = []
    for row_id, value in conn.execute(sa.select(old_t.c.id, old_t.c[step.field])):
        try:
            if opened is not None and str(row_id) in opened:
                json_value = opened[str(row_id)]
            else:
                json_value = types.to_json(step.old_spec, value)
            converted.append({"_id": row_id, "_v": types.to_db(step.spec, json_value)})
        except (types.ConversionError, ValueError, TypeError) as exc:
            bad.append(
                Fault(
                    f"entities.{step.entity}.fields.{step.field}",
                    f"record {row_id}: {exc}",
                    "conversion_failed",
                )
            )
    if bad:
        raise ValidationFailed(
            f"Cannot {step.describe()}: {len(bad)} record(s) hold values that do not convert; "
            "fix or clear them first",
            path=f"entities.{step.entity}.fields.{step.field}",
            faults=bad[:MAX_NAMED_ROWS],
            extra={"rows": [f.message.split(":")[0][7:] for f in bad[:MAX_NAMED_ROWS]]},
        )
    temp = f"{step.field}__new"
    op.add_column(table, sa.Column(temp, types.column_type(step.spec)), schema=schema)
    new_t = sa.table(
        table, sa.column("id"), sa.column(temp, types.column_type(step.spec)), schema=schema
    )
    if converted:
        conn.execute(
            new_t.update()
            .where(new_t.c.id == sa.bindparam("_id"))
            .values({temp: sa.bindparam("_v")}),
            converted,
        )
    with op.batch_alter_table(table, schema=schema) as batch:
        batch.drop_column(step.field)
    with op.batch_alter_table(table, schema=schema) as batch:
        batch.alter_column(temp, new_column_name=step.field)
