"""Field types: how each one is stored, validated, typed in CEL and converted to/from JSON.

Pure: no I/O. Every other module asks this one about a field's type.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

Spec = dict[str, Any]
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 not after a backslash


class ConversionError(ValueError):
    """A value that cannot become the field's type."""


def column_type(spec: Spec) -> sa.types.TypeEngine[Any]:
    """The SQL column type of a field."""
    if spec.get("encrypted"):
        return sa.Text()  # ciphertext (enc1.<subject>.<base64>), whatever the field's type
    t = spec["type"]
    if t in ("string", "email", "url", "enum", "reference"):
        return sa.String(spec.get("maxLength") or 255 if t == "string" else 2048)
    if t == "text":
        return sa.Text()
    if t == "integer":
        return sa.BigInteger()
    if t == "decimal":
        return sa.Numeric(spec.get("precision", 18), spec.get("scale", 2), asdecimal=True)
    if t == "boolean":
        return sa.Boolean()
    if t == "date":
        return sa.Date()
    if t == "datetime":
        return sa.DateTime(timezone=True)
    return sa.JSON()  # json, attachment


def json_schema(spec: Spec) -> dict[str, Any]:
    """The JSON Schema of one field's value (without null; the entity adds it if optional)."""
    t = spec["type"]
    s: dict[str, Any]
    if t in ("string", "text", "email", "url"):
        s = {"type": "string"}
        if t == "email":
            s["format"] = "email"
        if t == "url":
            s["format"] = "uri"
        for key in ("minLength", "maxLength", "pattern"):
            if key in spec:
                s[key] = spec[key]
        if t == "string" and "maxLength" not in spec:
            s["maxLength"] = 255
    elif t == "integer":
        s = {"type": "integer"}
    elif t == "decimal":
        # Strings keep exactness ("12.50"); numbers are accepted for convenience.
        s = {"type": ["number", "string"], "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
    elif t == "boolean":
        s = {"type": "boolean"}
    elif t == "date":
        s = {"type": "string", "format": "date"}
    elif t == "datetime":
        s = {"type": "string", "format": "date-time"}
    elif t == "enum":
        s = {"type": "string", "enum": list(spec["values"])}
    elif t == "reference":
        s = {"type": "string", "minLength": 1, "maxLength": 64}
    elif t == "json":
        s = dict(spec.get("schema") or {})
    else:  # attachment metadata
        s = {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "size": {"type": "integer"},
                "content_type": {"type": "string"},
                "url": {"type": "string"},
            },
        }
    if t in ("integer", "decimal"):
        if "min" in spec:
            s["minimum"] = spec["min"]
        if "max" in spec:
            s["maximum"] = spec["max"]
    return s


def cel_type(spec: Spec) -> str:
    """The CEL type name of a field (`INT`, `DOUBLE`, `STRING` …)."""
    t = spec["type"]
    if t == "integer":
        return "INT"
    if t == "decimal":
        return "DOUBLE"
    if t == "boolean":
        return "BOOL"
    if t == "datetime":
        return "TIMESTAMP"
    if t in ("json", "attachment"):
        return "DYN"
    return "STRING"


def to_db(spec: Spec, value: Any) -> Any:
    """A JSON value (already schema-valid) as the Python value the column stores."""
    if value is None:
        return None
    t = spec["type"]
    try:
        if t == "decimal":
            d = Decimal(str(value))
            scale = spec.get("scale", 2)
            q = d.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_EVEN)
            if len(q.as_tuple().digits) > spec.get("precision", 18):
                raise ConversionError(f"{value} has more than {spec.get('precision', 18)} digits")
            return q
        if t == "integer":
            if isinstance(value, bool):
                raise ConversionError(f"{value!r} is not an integer")
            if isinstance(value, float) and not value.is_integer():
                raise ConversionError(f"{value!r} is not a whole number")
            number = int(value)
            if not INT_MIN <= number <= INT_MAX:  # the column is a 64-bit BIGINT
                raise ConversionError(f"{value!r} is out of range for a 64-bit integer")
            return number
        if t == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ConversionError(f"{value!r} is not a boolean")
        if t == "date":
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, dt.date):
                return value
            return dt.date.fromisoformat(str(value))
        if t == "datetime":
            v = (
                value
                if isinstance(value, dt.datetime)
                else dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            )
            return v if v.tzinfo else v.replace(tzinfo=dt.UTC)
        if t in ("json", "attachment"):
            _storable_json(value)
            return value
        if t == "enum" and str(value) not in spec["values"]:
            raise ConversionError(f"{value!r} is not one of {', '.join(spec['values'])}")
        if isinstance(value, dict | list):
            raise ConversionError("a structured value is not text")
        text = str(value)
        if len(text) > (spec.get("maxLength") or (255 if t == "string" else 1 << 30)):
            raise ConversionError(f"{value!r} is too long")
        _storable_text(text)
        return text
    except (InvalidOperation, ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, ConversionError):
            raise
        raise ConversionError(f"{value!r} cannot become {t}") from exc


def _storable_text(text: str) -> None:
    """Refuse text no database stores alike (PostgreSQL has no NUL; UTF-8 no lone surrogate)."""
    if "\x00" in text:
        raise ConversionError("holds a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ConversionError("holds a lone UTF-16 surrogate; text must be Unicode") from None


def _storable_json(value: Any) -> None:
    """Refuse a JSON value PostgreSQL's JSON would not store (NUL, NaN, lone surrogates)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise ConversionError("is nested too deeply") from None
    except ValueError:
        raise ConversionError("holds NaN or Infinity, which JSON has not") from None
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        raise ConversionError("holds a NUL character")
    _storable_text(text)


def to_json(spec: Spec, value: Any) -> Any:
    """A stored value as JSON (decimals as exact strings, dates ISO 8601)."""
    if value is None:
        return None
    convert = json_converter(spec)
    return value if convert is None else convert(value)


def json_converter(spec: Spec) -> Callable[[Any], Any] | None:
    """What `to_json` does to a stored value of this field (not None), or None when it hands
    the value back as it is (text, enums, JSON): looked up once per field, not per value."""
    t = spec["type"]
    if t == "decimal":
        return _decimal_json(spec.get("scale", 2))
    return _JSON.get(t)


@functools.cache
def _decimal_json(scale: int) -> Callable[[Any], str]:
    quantum = Decimal(1).scaleb(-scale)
    return lambda value: str(Decimal(value).quantize(quantum))


def datetime_json(value: Any) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=dt.UTC)
    return str(value.isoformat()).replace("+00:00", "Z")


def _date_json(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


_JSON: dict[str, Callable[[Any], Any]] = {
    "datetime": datetime_json,
    "date": _date_json,
    "boolean": bool,
    "integer": int,
}


def to_cel(spec: Spec, value: Any) -> Any:
    """A stored value as CEL sees it (decimals as doubles, dates as ISO strings)."""
    t = spec["type"]
    if t == "decimal":
        return float(value)
    if t == "date":
        return value.isoformat()
    if t == "datetime":
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value


# Type changes that can lose information (decided without looking at data).
_WIDENING = {
    ("string", "text"),
    ("email", "string"),
    ("email", "text"),
    ("url", "string"),
    ("url", "text"),
    ("enum", "string"),
    ("enum", "text"),
    ("integer", "decimal"),
    ("integer", "string"),
    ("integer", "text"),
    ("decimal", "string"),
    ("decimal", "text"),
    ("boolean", "string"),
    ("boolean", "text"),
    ("date", "string"),
    ("date", "text"),
    ("date", "datetime"),
    ("datetime", "string"),
    ("datetime", "text"),
}


def is_narrowing(old: Spec, new: Spec) -> bool:
    """Whether changing `old` into `new` can lose data (a destructive change)."""
    if old["type"] == new["type"]:
        if new["type"] == "string":
            return bool((new.get("maxLength") or 255) < (old.get("maxLength") or 255))
        if new["type"] == "decimal":
            return bool(
                new.get("scale", 2) < old.get("scale", 2)
                or new.get("precision", 18) - new.get("scale", 2)
                < old.get("precision", 18) - old.get("scale", 2)
            )
        if new["type"] == "enum":
            return not set(old["values"]) <= set(new["values"])
        return False
    return (old["type"], new["type"]) not in _WIDENING


def storage_changed(old: Spec, new: Spec) -> bool:
    """Whether the column itself must change (type or its size)."""
    return bool(repr(column_type(old)) != repr(column_type(new)))
