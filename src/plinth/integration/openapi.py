"""Importing an OpenAPI 3 document: its operations become callable connector operations, each
with a JSON Schema for its input (parameters + body) and for its output (the 2xx body).
Pure functions: a document in, operations out."""

from __future__ import annotations

import copy
import re
from typing import Any

from plinth.errors import Fault, ValidationFailed

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
OPERATION_NAME = re.compile(r"[^A-Za-z0-9_]+")


def import_openapi(document: Any) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """(base URL from `servers`, operations by name) from an OpenAPI 3.x document."""
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3"):
        raise ValidationFailed.of(
            [Fault("openapi", "an OpenAPI 3.x document is required")], "OpenAPI document"
        )
    paths = document.get("paths")
    if not isinstance(paths, dict) or not paths:
        raise ValidationFailed.of([Fault("paths", "the document has no paths")], "OpenAPI document")
    servers = document.get("servers") or []
    base_url = servers[0].get("url") if servers and isinstance(servers[0], dict) else None
    operations: dict[str, dict[str, Any]] = {}
    for path, item in paths.items():
        item = _resolve(document, item)
        common = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            name = _name(op.get("operationId") or f"{method}_{path}")
            if name in operations:
                name = f"{name}_{method}"
            operations[name] = _operation(document, method, path, common, op)
    return base_url, operations


def _operation(
    document: dict[str, Any], method: str, path: str, common: list[Any], op: dict[str, Any]
) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    params = []
    by_key = {}
    for raw in [*common, *op.get("parameters", [])]:
        param = _resolve(document, raw)
        by_key[(param.get("name"), param.get("in"))] = param  # operation overrides path item
    for (pname, where), param in by_key.items():
        if where not in ("path", "query", "header") or not pname:
            continue  # cookies are not for service calls
        params.append({"name": pname, "in": where})
        properties[pname] = _schema(document, param.get("schema", {}))
        if param.get("required") or where == "path":
            required.append(pname)
    has_body = False
    body = op.get("requestBody")
    if body:
        body = _resolve(document, body)
        content = body.get("content", {})
        media: dict[str, Any] = content.get("application/json") or next(iter(content.values()), {})
        properties["body"] = _schema(document, media.get("schema", {}))
        has_body = True
        if body.get("required"):
            required.append("body")
    output: dict[str, Any] = {}
    for status, response in (op.get("responses") or {}).items():
        if str(status).startswith("2"):
            response = _resolve(document, response)
            media = (response.get("content") or {}).get("application/json") or {}
            if media and "schema" in media:
                output = _schema(document, media["schema"])
            break
    result: dict[str, Any] = {
        "method": method.upper(),
        "path": path,
        "params": params,
        "body": has_body,
        "input_schema": {
            "type": "object",
            "additionalProperties": False,
            "properties": properties,
            "required": required,
        },
    }
    if op.get("summary"):
        result["summary"] = str(op["summary"])[:500]
    if output:
        result["output_schema"] = output
    return result


def _name(raw: str) -> str:
    name = OPERATION_NAME.sub("_", raw).strip("_")[:100] or "operation"
    return name if name[0].isalpha() else f"op_{name}"[:100]


def _resolve(document: dict[str, Any], value: Any) -> Any:
    seen = set()
    while isinstance(value, dict) and "$ref" in value:
        ref = value["$ref"]
        if ref in seen or not isinstance(ref, str) or not ref.startswith("#/"):
            return {}
        seen.add(ref)
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        value = target if target is not None else {}
    return value


def _schema(document: dict[str, Any], schema: Any, stack: tuple[str, ...] = ()) -> Any:
    """Inline `$ref`s (a recursive reference becomes `{}`) and map OpenAPI 3.0's `nullable`."""
    if isinstance(schema, list):
        return [_schema(document, s, stack) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in stack or len(stack) > 32:
            return {}
        return _schema(document, _resolve(document, schema), (*stack, ref))
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in (
            "example",
            "examples",
            "xml",
            "externalDocs",
            "discriminator",
            "readOnly",
            "writeOnly",
            "deprecated",
        ):
            continue
        if key == "nullable":
            continue
        if key in ("properties", "patternProperties", "$defs", "definitions"):
            out[key] = {k: _schema(document, v, stack) for k, v in value.items()}
        else:
            out[key] = _schema(document, copy.deepcopy(value), stack)
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out
