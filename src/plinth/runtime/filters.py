"""The filter language: a readable text syntax, its AST, and the AST compiled to bound SQL.

    status eq 'open' and (amount gt 100 or country in ('DE', 'FR')) and not email isnull true

AST: {"and": [..]}, {"or": [..]}, {"not": f}, {"field": f, "op": op, "value": v}. Values only
ever become bound parameters and field names are looked up in the entity's columns, so nothing
a caller writes reaches the SQL text.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from plinth import jsontext
from plinth.errors import BadRequest, ValidationFailed
from plinth.runtime import types

OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "contains", "startswith", "isnull")
MAX_NODES = 200

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>'(?:[^']|'')*')
  | (?P<num>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
)""",
    re.X,
)


def parse(text: str) -> dict[str, Any]:
    """Parse the text syntax (or a JSON AST when it starts with '{') into the AST."""
    text = text.strip()
    if text.startswith("{"):
        try:
            ast = jsontext.loads(text)
        except ValidationFailed as exc:
            raise BadRequest(f"The filter {exc.faults[0].message}", path="filter") from None
        check(ast)
        return ast
    tokens = _tokenize(text)
    parser = _Parser(tokens)
    ast = parser.expr()
    if parser.i != len(tokens):
        raise BadRequest(f"Unexpected {tokens[parser.i][1]!r} in filter", path="filter")
    return ast


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise BadRequest(
                f"Cannot read the filter at character {pos + 1}: {text[pos : pos + 20]!r}",
                path="filter",
            )
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0
        self.nodes = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise BadRequest("The filter ends too early", path="filter")
        self.i += 1
        return tok

    def word(self, w: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() == w:
            self.i += 1
            return True
        return False

    def expr(self) -> dict[str, Any]:
        items = [self.conj()]
        while self.word("or"):
            items.append(self.conj())
        return items[0] if len(items) == 1 else {"or": items}

    def conj(self) -> dict[str, Any]:
        items = [self.unary()]
        while self.word("and"):
            items.append(self.unary())
        return items[0] if len(items) == 1 else {"and": items}

    def unary(self) -> dict[str, Any]:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise BadRequest(f"The filter has more than {MAX_NODES} conditions", path="filter")
        if self.word("not"):
            return {"not": self.unary()}
        tok = self.peek()
        if tok == ("punct", "("):
            self.take()
            inner = self.expr()
            if self.take() != ("punct", ")"):
                raise BadRequest("A '(' in the filter is never closed", path="filter")
            return inner
        kind, name = self.take()
        if kind != "word":
            raise BadRequest(f"Expected a field name in the filter, got {name!r}", path="filter")
        kind, op = self.take()
        if kind != "word" or op.lower() not in OPS:
            raise BadRequest(
                f"Unknown filter operator {op!r}; use one of {', '.join(OPS)}", path="filter"
            )
        op = op.lower()
        if op in ("in", "nin"):
            if self.take() != ("punct", "("):
                raise BadRequest(f"'{op}' takes a list in parentheses", path="filter")
            values = [self.value()]
            while self.peek() == ("punct", ","):
                self.take()
                values.append(self.value())
            if self.take() != ("punct", ")"):
                raise BadRequest("A list in the filter is never closed", path="filter")
            return {"field": name, "op": op, "value": values}
        return {"field": name, "op": op, "value": self.value()}

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            if len(text) > 40:  # no column holds more digits (and int() refuses > 4300)
                raise BadRequest(f"The number {text[:20]}… is too long", path="filter")
            return float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text.lower()]
        raise BadRequest(
            f"Expected a value in the filter, got {text!r} (quote text with '')", path="filter"
        )


def check(ast: Any, depth: int = 0) -> None:
    """Refuse a malformed AST (400 naming the problem)."""
    if depth > 32 or not isinstance(ast, dict):
        raise BadRequest("A filter node is an object (and/or/not/field)", path="filter")
    if "and" in ast or "or" in ast:
        items = ast.get("and", ast.get("or"))
        if not isinstance(items, list) or not items:
            raise BadRequest("'and'/'or' take a non-empty list", path="filter")
        for item in items:
            check(item, depth + 1)
    elif "not" in ast:
        check(ast["not"], depth + 1)
    elif not isinstance(ast.get("field"), str) or ast.get("op") not in OPS:
        raise BadRequest(f"A condition needs a field and an op ({', '.join(OPS)})", path="filter")


def fields_of(ast: Any) -> list[str]:
    """The field names a (checked or not) filter AST refers to, in order."""
    if not isinstance(ast, dict):
        return []
    if "and" in ast or "or" in ast:
        items = ast.get("and", ast.get("or"))
        return [n for f in (items if isinstance(items, list) else []) for n in fields_of(f)]
    if "not" in ast:
        return fields_of(ast["not"])
    return [ast["field"]] if isinstance(ast.get("field"), str) else []


def column(entity: Any, name: str, path: str = "filter") -> sa.ColumnElement[Any]:
    """The column of a field or system field, or 400 naming the unknown field."""
    if not isinstance(name, str) or name not in entity.table.c:
        raise BadRequest(
            f"Unknown field {name!r} on entity {entity.name!r}", path=path, extra={"field": name}
        )
    if path != "fields" and entity.fields.get(name, {}).get("encrypted"):
        # Ciphertext has no order and a fresh nonce each write: comparing it means nothing.
        raise BadRequest(
            f"Field {name!r} is encrypted at rest; it cannot be used in {path}",
            path=path,
            extra={"field": name},
        )
    return entity.table.c[name]


# The system columns, typed like fields so their filter values convert the same way.
SYSTEM_FIELDS: dict[str, types.Spec] = {
    "id": {"type": "string", "maxLength": 64},
    "version": {"type": "integer"},
    "created_at": {"type": "datetime"},
    "updated_at": {"type": "datetime"},
    "created_by": {"type": "string", "maxLength": 255},
    "updated_by": {"type": "string", "maxLength": 255},
}
# Types whose stored text LIKE can search (others are numbers, dates or JSON in SQL).
TEXT_TYPES = ("string", "text", "email", "url", "enum", "reference")


def _spec(entity: Any, name: str) -> types.Spec:
    spec = entity.fields.get(name) or SYSTEM_FIELDS.get(name) or {"type": "string"}
    return spec  # type: ignore[no-any-return]


def _bind(entity: Any, name: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        return types.to_db(_spec(entity, name), value)
    except types.ConversionError as exc:
        raise BadRequest(
            f"Filter value for {name!r}: {exc}", path=f"filter.{name}", extra={"field": name}
        ) from exc


def compile_filter(entity: Any, ast: dict[str, Any]) -> sa.ColumnElement[bool]:
    """The AST as a SQLAlchemy condition with bound parameters."""
    check(ast)
    if "and" in ast:
        return sa.and_(*[compile_filter(entity, f) for f in ast["and"]])
    if "or" in ast:
        return sa.or_(*[compile_filter(entity, f) for f in ast["or"]])
    if "not" in ast:
        return sa.not_(compile_filter(entity, ast["not"]))
    name, op, value = ast["field"], ast["op"], ast.get("value")
    col = column(entity, name)
    kind = _spec(entity, name)["type"]
    if op == "isnull":
        return col.is_(None) if value in (True, None, "true") else col.is_not(None)
    if kind in ("json", "attachment"):
        # A JSON document has no order and no equality SQL would agree on across databases.
        raise BadRequest(
            f"Field {name!r} holds JSON; it can only be filtered with isnull",
            path=f"filter.{name}",
            extra={"field": name},
        )
    if op in ("in", "nin"):
        if not isinstance(value, list) or len(value) > 1000:
            raise BadRequest(f"'{op}' takes a list of at most 1000 values", path="filter")
        values = [_bind(entity, name, v) for v in value]
        return col.in_(values) if op == "in" else col.not_in(values)
    if op in ("contains", "startswith"):
        if not isinstance(value, str):
            raise BadRequest(f"'{op}' takes text", path="filter")
        if kind not in TEXT_TYPES:
            raise BadRequest(
                f"'{op}' searches text; {name!r} is {kind}",
                path=f"filter.{name}",
                extra={"field": name},
            )
        try:  # the same text checks as an equality (no NUL, no lone surrogate)
            types.to_db({"type": "text"}, value)
        except types.ConversionError as exc:
            raise BadRequest(f"Filter value for {name!r}: {exc}", path=f"filter.{name}") from exc
        # autoescape: % and _ in the value match themselves, not as wildcards
        return (
            col.contains(value, autoescape=True)
            if op == "contains"
            else col.startswith(value, autoescape=True)
        )
    bound = _bind(entity, name, value)
    if bound is None:
        return col.is_(None) if op == "eq" else col.is_not(None)
    return {
        "eq": col.__eq__,
        "ne": col.__ne__,
        "lt": col.__lt__,
        "lte": col.__le__,
        "gt": col.__gt__,
        "gte": col.__ge__,
    }[op](bound)
