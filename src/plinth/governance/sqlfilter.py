"""Compile the filter AST of `row_filter` into a SQLAlchemy WHERE clause over a table."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from plinth.errors import BadRequest


def to_where(node: dict[str, Any], table: sa.Table) -> Any:
    """`{"and"|"or"|"not"|"field"...}` → SQL expression (unknown fields refuse, typed)."""
    if "and" in node:
        return sa.and_(sa.true(), *(to_where(n, table) for n in node["and"]))
    if "or" in node:
        return sa.or_(sa.false(), *(to_where(n, table) for n in node["or"]))
    if "not" in node:
        return sa.not_(to_where(node["not"], table))
    name, op, value = node["field"], node["op"], node.get("value")
    values = list(value or ()) if op in ("in", "nin") else []
    if name not in table.c:
        raise BadRequest(f"Policy filters on unknown field {name!r}", path=f"filter.{name}")
    col = table.c[name]
    ops = {
        "eq": lambda: col == value,
        "ne": lambda: col != value,
        "lt": lambda: col < value,
        "lte": lambda: col <= value,
        "gt": lambda: col > value,
        "gte": lambda: col >= value,
        "in": lambda: col.in_(values),
        "nin": lambda: col.not_in(values),
        "contains": lambda: col.contains(value),
        "startswith": lambda: col.startswith(value),
        "isnull": lambda: col.is_(None) if value else col.is_not(None),
    }
    return ops[op]()
