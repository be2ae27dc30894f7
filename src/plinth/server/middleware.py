"""Pure ASGI middleware: request ids and the request body size limit."""

from __future__ import annotations

import random
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plinth.errors import PayloadTooLarge
from plinth.server.problems import PROBLEM


class RequestLimits:
    """Give each request an id (echoed as `X-Request-Id`) and refuse oversized bodies (413)."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, routes: dict[tuple[str, str], int] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # (method, exact path) -> its own limit, e.g. plugin packages upload far more than 1 MB.
        self.routes = routes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = length = None
        for key, value in scope.get("headers") or ():
            if key == b"x-request-id":  # the last one of a name, as dict(headers) had it
                offered = value
            elif key == b"content-length":
                length = value
        request_id = ""
        if offered:
            # A caller's id is echoed in headers and logs: only its safe characters are kept.
            request_id = "".join(
                c
                for c in offered[:64].decode("latin-1")
                if c.isascii() and (c.isalnum() or c in "-_.:")
            )
        # A correlation id, not a secret (callers may choose their own): no system call for it
        # (the module's generator is seeded afresh in each forked process).
        request_id = request_id or f"{random.getrandbits(64):016x}"
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.routes.get((scope["method"], scope["path"]), self.max_body_bytes)
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(send, limit, request_id)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, limit, request_id)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int, request_id: str) -> None:
    import json

    error = PayloadTooLarge(f"The request body is larger than {limit} bytes")
    body: dict[str, Any] = error.problem() | {"request_id": request_id}
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(data)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
