"""Pure ASGI middleware: refuse request text no layer can store, before any route sees it.

A NUL character reaches no PostgreSQL text column, and JSON that Python parses but no database
stores (lone surrogates, NaN, nesting that exhausts the stack) would otherwise fail deep inside
a layer as a 500. Both are the caller's fault: a 400/422 `problem+json` naming where.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plinth import jsontext
from plinth.errors import BadRequest, PlinthError
from plinth.server.problems import PROBLEM

# Bodies of these media types are JSON (FastAPI also reads a body without a type as JSON).
_JSON_TYPES = (b"json", b"text/plain")


class CleanInput:
    """Refuse NUL in the path or query (400) and unstorable JSON bodies (422)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = _url_fault(scope)
        if error is not None:
            await _refuse(send, error, scope)
            return
        headers = dict(scope.get("headers") or [])
        kind = headers.get(b"content-type", b"").lower()
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE") or (
            kind and not any(t in kind for t in _JSON_TYPES)
        ):
            await self.app(scope, receive, send)
            return
        # Read the whole body (RequestLimits, outside us, caps its size), check it, replay it.
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            if body and (kind or _looks_like_json(body)):
                jsontext.check(body)
        except PlinthError as exc:
            await _refuse(send, exc, scope)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _looks_like_json(body: bytes) -> bool:
    """Whether an untyped body could be JSON (a zip or other binary upload cannot)."""
    head = body.lstrip(b" \t\r\n")[:1]
    return head != b"" and head in b'{["-0123456789tfn'


def _url_fault(scope: Scope) -> PlinthError | None:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    if b"\x00" in unquote_to_bytes(raw_path) or "\x00" in scope["path"]:
        return BadRequest("The path holds a NUL character", path="path")
    query: bytes = scope.get("query_string") or b""
    if query and b"\x00" in unquote_to_bytes(query.replace(b"+", b" ")):
        return BadRequest("The query string holds a NUL character", path="query")
    return None


async def _refuse(send: Send, error: PlinthError, scope: Scope) -> None:
    body = error.problem() | {"instance": scope["path"]}
    request_id = (scope.get("state") or {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
