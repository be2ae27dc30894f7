"""The `sql` connector kind: named, parameterised read queries on an external PostgreSQL.

Read-only twice over: a query must be a single SELECT (or WITH … SELECT), checked at publish,
and it runs in a READ ONLY transaction with a statement timeout, so even a query that slips
past the check cannot write. Parameters are bound (`:name` becomes `$n`), never interpolated.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from typing import Any

import asyncpg

from plinth.errors import Fault, NotFound, ValidationFailed
from plinth.integration.connectors.registry import CallContext, load_schema, register
from plinth.integration.models import ConnectorFailed, ConnectorTimeout
from plinth.jsonschema import Validator, compile_schema, faults

PARAM = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")
COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
READ = re.compile(r"^\s*(select|with|values|table)\b", re.I)
WRITES = re.compile(
    r"\b(insert|update|delete|merge|truncate|drop|alter|create|grant|copy|"
    r"call|do|lock|vacuum|set|reset)\b",
    re.I,
)


def compile_query(sql: str) -> tuple[str, list[str]]:
    """`:name` placeholders to asyncpg's `$n`, with the parameter order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return PARAM.sub(number, sql), names


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)  # exact, as records keep decimals
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | dt.timedelta):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class SqlKind:
    name = "sql"
    description = "An external PostgreSQL: parameterised read queries, rows as records"
    schema = load_schema("sql")
    validator: Validator = None

    def __init__(self) -> None:
        self._validators: dict[str, Validator] = {}

    def operations(self, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            name: {"summary": q.get("summary", ""), "params": sorted(q.get("params", {}))}
            for name, q in doc.get("queries", {}).items()
        }

    def check(self, name: str, doc: dict[str, Any]) -> list[Fault]:
        found = []
        for qname, query in doc.get("queries", {}).items():
            path = f"queries.{qname}.sql"
            text = COMMENTS.sub(" ", query["sql"]).strip().rstrip(";")
            if ";" in text:
                found.append(Fault(path, "one statement per query", "multiple_statements"))
            elif not READ.match(text) or WRITES.search(re.sub(r"'[^']*'", "''", text)):
                found.append(Fault(path, "only read queries (SELECT) are allowed", "not_read"))
            _, names = compile_query(text)
            for pname in names:
                if pname not in query.get("params", {}):
                    found.append(
                        Fault(
                            f"queries.{qname}.params",
                            f"parameter :{pname} is used but not declared",
                            "undeclared_param",
                        )
                    )
        return found

    async def call(
        self, ctx: CallContext, doc: dict[str, Any], operation: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        query = doc.get("queries", {}).get(operation)
        if query is None:
            raise NotFound(f"Connector {ctx.name!r} has no query {operation!r}", path="operation")
        params = query.get("params", {})
        schema = {
            "type": "object",
            "additionalProperties": False,
            "properties": params,
            "required": list(params),
        }
        key = repr(sorted(params.items()))
        validator = self._validators.get(key) or self._validators.setdefault(
            key, compile_schema(schema)
        )
        found = faults(validator, data, "input")
        if found:
            raise ValidationFailed.of(found, "connector input")
        text, names = compile_query(COMMENTS.sub(" ", query["sql"]).strip().rstrip(";"))
        max_rows = int(query.get("max_rows") or doc.get("max_rows") or 1000)
        timeout = float(doc.get("timeout_seconds", 10))
        dsn = await ctx.reveal(doc["dsn"])
        try:
            conn = await asyncpg.connect(dsn, timeout=timeout)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise ConnectorFailed(
                f"Connector {ctx.name!r} could not connect to its database: {type(exc).__name__}"
            ) from None
        try:
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
                cursor = conn.cursor(text, *[data[n] for n in names])
                rows: list[dict[str, Any]] = []
                async for row in cursor:
                    if len(rows) == max_rows:
                        return {"records": rows, "count": len(rows), "truncated": True}
                    rows.append({k: _plain(v) for k, v in row.items()})
        except asyncpg.QueryCanceledError:
            raise ConnectorTimeout(f"Query {operation!r} ran longer than {timeout:g} s") from None
        except asyncpg.PostgresError as exc:
            # The database's message names columns and tables, never the DSN.
            raise ConnectorFailed(
                f"Query {operation!r} failed: {exc.sqlstate} {type(exc).__name__}: {exc}",
                extra={"sqlstate": exc.sqlstate},
            ) from None
        finally:
            await conn.close()
        return {"records": rows, "count": len(rows), "truncated": False}


KIND = register(SqlKind())
