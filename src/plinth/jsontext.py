"""JSON text every layer can store: strict UTF-8, bounded nesting, no lone surrogates, no NaN.

Python's `json` module accepts more than the storage below it: NUL characters PostgreSQL's
text and JSON refuse, lone surrogates (`"\\ud800"`, or the raw bytes ED A0 80 it decodes with
`surrogatepass`) that no UTF-8 database can encode, `NaN`/`Infinity` that PostgreSQL's JSON
refuses, and nesting deep enough to exhaust the interpreter's stack. `loads` refuses each
with a 422 naming where it is; `check` does the same for an encoded body cheaply (it only
parses what could be at fault).
"""

from __future__ import annotations

import json
import re
from typing import Any

from plinth.errors import Fault, ValidationFailed
from plinth.jsonschema import join_path

MAX_DEPTH = 100
# An escaped UTF-16 surrogate: a pair is fine (it decodes to one character), a lone one is not.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def loads(raw: bytes | str, prefix: str = "") -> Any:
    """Parse JSON text, refusing what cannot be stored (422 with the path of the fault)."""
    text = _text(raw, prefix) if isinstance(raw, bytes) else raw
    try:
        if text.startswith("\ufeff"):  # as `json.loads` refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except RecursionError:
        raise _refuse(prefix, f"is nested deeper than {MAX_DEPTH} levels", "depth") from None
    except ValueError as exc:
        raise _refuse(prefix, f"is not valid JSON: {exc}", "json") from None
    check_value(value, prefix)
    return value


def check(raw: bytes, prefix: str = "") -> None:
    """Refuse an encoded JSON body `loads` would refuse; parses only when it might be at fault."""
    _text(raw, prefix)
    suspicious = (
        raw.count(b"[") + raw.count(b"{") > MAX_DEPTH
        or _SURROGATE_ESCAPE.search(raw) is not None
        or b"NaN" in raw
        or b"Infinity" in raw
        or b"\\u0000" in raw
    )
    if suspicious:
        try:
            loads(raw, prefix)
        except ValidationFailed as exc:
            if exc.faults and exc.faults[0].code == "json":
                return  # not JSON at all: the route answers that in its own words
            raise


def check_value(value: Any, prefix: str = "") -> None:
    """Refuse a decoded value nested deeper than MAX_DEPTH or holding unencodable text."""
    stack: list[tuple[Any, list[str | int], int]] = [(value, [], 0)]
    while stack:
        item, parts, depth = stack.pop()
        if isinstance(item, str):
            _storable(item, prefix, parts)
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise _refuse(
                    join_path(prefix, parts), f"is nested deeper than {MAX_DEPTH} levels", "depth"
                )
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str):
                    _storable(key, prefix, parts)
                stack.append((child, [*parts, key], depth + 1))


def _storable(text: str, prefix: str, parts: list[str | int]) -> None:
    if "\x00" in text:
        raise _refuse(join_path(prefix, parts), "holds a NUL character", "nul")
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _refuse(
            join_path(prefix, parts),
            f"holds a lone UTF-16 surrogate at character {exc.start + 1}; text must be Unicode",
            "unicode",
        ) from None


def _text(raw: bytes, prefix: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(
            prefix, f"is not UTF-8 (invalid byte at offset {exc.start})", "unicode"
        ) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# Built once: `json.loads` with an argument builds a decoder per call (~4 µs a request body).
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _refuse(path: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed.of([Fault(path or "body", message, code)], "body")
