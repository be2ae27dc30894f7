"""The platform's OpenAPI document, made true: every status each operation can answer, errors
as `application/problem+json`, and the right `Allow` for a path's methods.

FastAPI documents what a route returns when all goes well and a 422 of its own shape. The
platform also answers, for every operation, what its middleware and error handling answer
(`plinth.errors`, rendered by `problems.py`): those are added here, once, from the traits of
each operation, so a fuzzer finds no status or content type the document does not declare.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from plinth.server.problems import PROBLEM

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem: a stable `code`, a message, the path of the fault",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "path": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
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
    "additionalProperties": True,
}
REASONS = {
    400: "Bad request (a malformed parameter, a NUL character)",
    401: "No valid credential",
    403: "The credential may not do this",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with the current state",
    412: "Precondition failed (If-Match, a grant that no longer covers it)",
    413: "The body is too large",
    422: "Validation failed (every fault with its path)",
    429: "Too many requests (Retry-After says when to retry)",
    502: "A plugin or remote service failed",
    503: "Unavailable or busy (Retry-After says when to retry)",
    504: "A time limit was exceeded",
}
PUBLIC = ("/healthz", "/readyz")
WRITES = {"post", "put", "patch", "delete"}


def statuses(path: str, method: str, has_body: bool) -> list[int]:
    """The error statuses an operation can answer, from what every layer under it does."""
    found = {400, 404, 422, 429, 503, 504}  # input guard, routing, validation, gateway
    if path not in PUBLIC:
        found |= {401, 403}
    if method in WRITES or has_body:
        found |= {409, 412, 413}
    if path.startswith(("/api/t/", "/a/")) or "plugins" in path:
        found.add(502)  # plugin hooks and actions, connectors, workflow steps
    return sorted(found)


def truthful(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with every operation's error statuses declared as problem+json."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    problem = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method not in {"get", "put", "post", "delete", "patch", "options", "head"}:
                continue
            responses = op.setdefault("responses", {})
            for status in statuses(path, method, "requestBody" in op):
                responses[str(status)] = {"description": REASONS[status], "content": problem}
    return doc


def install(app: FastAPI) -> None:
    """Serve the true document at /openapi.json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = truthful(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed(routes: Iterable[Any], scope: Scope) -> set[str]:
    """Every method some route serves at the request's path (empty: no route has the path)."""
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(scope)  # PARTIAL: the path matches, the method does not
        route_methods = getattr(route, "methods", None)
        if match != Match.NONE and route_methods:
            methods |= set(route_methods)
    if methods:
        methods |= {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
    return methods


class Methods:
    """`OPTIONS` answers 204 with the path's methods in `Allow` (a CORS preflight for an app
    is answered by the gateway, outside); a 405 carries the same list."""

    def __init__(self, app: ASGIApp, router: Any) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        methods = allowed(self.router.routes, scope) if scope["method"] == "OPTIONS" else set()
        if methods:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [(b"allow", ", ".join(sorted(methods)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_allow(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                listed = ", ".join(sorted(allowed(self.router.routes, scope))).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", listed)]}
            await send(message)

        await self.app(scope, receive, send_allow)
