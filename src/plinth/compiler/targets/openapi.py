"""The `openapi` target: an OpenAPI 3.1 document for an app version's generated data API.

Pure: built from the definition alone, so it is cached by the version's content hash.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from plinth.compiler.targets.base import AppVersion, Artifact, artifact
from plinth.runtime.compiled import entity_schema
from plinth.runtime.filters import OPS
from plinth.runtime.service import MAX_LIMIT

SYSTEM_PROPERTIES = {
    "id": {"type": "string", "readOnly": True},
    "version": {
        "type": "integer",
        "readOnly": True,
        "description": "Bumped on every write; the ETag",
    },
    "created_at": {"type": "string", "format": "date-time", "readOnly": True},
    "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
    "created_by": {"type": ["string", "null"], "readOnly": True},
    "updated_by": {"type": ["string", "null"], "readOnly": True},
}

_PROBLEM = {
    "description": "A problem (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


class OpenAPI:
    """The target: the document as JSON, written as the API's JSON responses are."""

    name = "openapi"
    description = "The app's REST API as an OpenAPI 3.1 document"
    media_type = "application/json"

    def revision(self) -> str:
        return ""

    def compile(self, version: AppVersion) -> Artifact:
        doc = build(version.tenant, version.slug, version.number, version.definition, version.name)
        body = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return artifact(body.encode(), self.media_type)


def _title(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_"))


def build(
    tenant: str, app: str, version: int, definition: dict[str, Any], title: str | None = None
) -> dict[str, Any]:
    """The OpenAPI document of one app version."""
    schemas: dict[str, Any] = {
        "Problem": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "detail": {"type": "string"},
                "path": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "message": {"type": "string"},
                            "code": {"type": "string"},
                        },
                    },
                },
            },
        }
    }
    paths: dict[str, Any] = {}
    base = f"/api/t/{tenant}/apps/{app}/data"
    for name, doc in definition.get("entities", {}).items():
        t = _title(name)
        record = copy.deepcopy(entity_schema(doc, for_output=True))
        record["properties"] = {**SYSTEM_PROPERTIES, **record["properties"]}
        record["required"] = list(SYSTEM_PROPERTIES)
        record.pop("additionalProperties", None)
        for fname, spec in doc.get("fields", {}).items():
            if "computed" in spec:
                record["properties"][fname]["readOnly"] = True
            if spec["type"] == "reference":
                record["properties"][fname]["description"] = (
                    f"id of a {spec['entity']}; with expand={fname} the {spec['entity']} itself"
                )
                record["properties"][fname] = {
                    "anyOf": [
                        record["properties"][fname],
                        {"$ref": f"#/components/schemas/{_title(spec['entity'])}"},
                    ]
                }
        schemas[t] = record
        schemas[f"{t}Input"] = entity_schema(doc)
        patch = copy.deepcopy(entity_schema(doc))
        patch.pop("required", None)
        schemas[f"{t}Patch"] = patch
        schemas[f"{t}Page"] = {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{t}"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        }
        paths[f"{base}/{name}"] = _collection(name, t, doc)
        paths[f"{base}/{name}/{{id}}"] = _item(name, t)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title or app,
            "version": str(version),
            "description": f"Data API of app {app!r}, version {version}",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


# What any operation can answer besides its own outcome: a malformed parameter or a NUL (400),
# credentials (401, 403), an unknown app or record (404), validation (422), the gateway's rate
# limits, fair admission and time limit (429, 503, 504).
_ALWAYS = (400, 401, 403, 404, 422, 429, 503, 504)
# Writes also meet conflicts (409), large bodies (413) and before-write hooks: a plugin that
# fails (502) or cannot start in time (429/503).
_WRITE = (409, 413, 502)


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _PROBLEM for c in sorted({*_ALWAYS, *codes})}


def _etag() -> dict[str, Any]:
    return {"ETag": {"description": "The record's version", "schema": {"type": "string"}}}


def _collection(name: str, t: str, doc: dict[str, Any]) -> dict[str, Any]:
    fields = ", ".join(doc.get("fields", {}))
    return {
        "get": {
            "operationId": f"list_{name}",
            "summary": f"List {name} records",
            "parameters": [
                {
                    "name": "filter",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": f"e.g. `status eq 'open' and (amount gt 100 or country in "
                    f"('DE','FR'))`; ops: {', '.join(OPS)}; or a JSON AST. "
                    f"Fields: {fields}",
                },
                {
                    "name": "sort",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "comma-separated fields, '-' prefix for descending",
                },
                {
                    "name": "fields",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "comma-separated fields to return (id always)",
                },
                {
                    "name": "expand",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "comma-separated reference fields to inline",
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LIMIT,
                        "default": 50,
                    },
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "next_cursor of the previous page",
                },
            ],
            "responses": {
                "200": {"description": "A page", "content": _json(_ref(f"{t}Page"))},
                **_errors(),
            },
        },
        "post": {
            "operationId": f"create_{name}",
            "summary": f"Create {name} record(s)",
            "requestBody": {
                "required": True,
                "content": _json(
                    {"oneOf": [_ref(f"{t}Input"), {"type": "array", "items": _ref(f"{t}Input")}]}
                ),
            },
            "responses": {
                "201": {
                    "description": "Created (a list when a list was sent)",
                    "headers": _etag(),
                    "content": _json({"oneOf": [_ref(t), {"type": "array", "items": _ref(t)}]}),
                },
                **_errors(*_WRITE),
            },
        },
    }


def _item(name: str, t: str) -> dict[str, Any]:
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    match = {
        "name": "If-Match",
        "in": "header",
        "schema": {"type": "string"},
        "description": "ETag of the version you read; 412 if it changed",
    }
    one = {"description": "The record", "headers": _etag(), "content": _json(_ref(t))}
    return {
        "parameters": [id_param],
        "get": {
            "operationId": f"get_{name}",
            "summary": f"Get a {name}",
            "responses": {"200": one, **_errors()},
        },
        "patch": {
            "operationId": f"patch_{name}",
            "summary": f"Change fields of a {name}",
            "parameters": [match],
            "requestBody": {"required": True, "content": _json(_ref(f"{t}Patch"))},
            "responses": {"200": one, **_errors(*_WRITE, 412)},
        },
        "put": {
            "operationId": f"replace_{name}",
            "summary": f"Replace a {name}",
            "parameters": [match],
            "requestBody": {"required": True, "content": _json(_ref(f"{t}Input"))},
            "responses": {"200": one, **_errors(*_WRITE, 412)},
        },
        "delete": {
            "operationId": f"delete_{name}",
            "summary": f"Delete a {name}",
            "parameters": [match],
            "responses": {"204": {"description": "Deleted"}, **_errors(409, 412)},
        },
    }
