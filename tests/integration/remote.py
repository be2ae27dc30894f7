"""A real HTTP service on 127.0.0.1 for connector tests: a pet store, a flaky endpoint, a
slow one, a large one, an OAuth2 token endpoint and a webhook receiver."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "key-4b1d-sekret-value"
CLIENT_ID = "plinth-client"
CLIENT_SECRET = "oauth-client-sekret-9f2"
PET_REF = {"$ref": "#/components/schemas/Pet"}
NEW_PET_REF = {"$ref": "#/components/schemas/NewPet"}


class Remote:
    """State shared with the handler; tests read and tweak it."""

    def __init__(self) -> None:
        self.pets: dict[int, dict[str, Any]] = {1: {"id": 1, "name": "Rex", "tag": "dog"}}
        self.calls: dict[str, int] = {}
        self.flaky_failures = 2
        self.hook_status = 200
        self.hooks: list[dict[str, Any]] = []
        self.tokens_issued: list[str] = []  # tokens the service accepts (tests revoke them)
        self.token_log: list[str] = []  # every token ever issued
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def openapi(self) -> dict[str, Any]:
        pet = {
            "type": "object",
            "required": ["id", "name"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "tag": {"type": "string", "nullable": True},
            },
        }
        return {
            "openapi": "3.0.3",
            "info": {"title": "Pets", "version": "1"},
            "servers": [{"url": self.url}],
            "components": {
                "schemas": {
                    "Pet": pet,
                    "NewPet": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "tag": {"type": "string"},
                        },
                    },
                }
            },
            "paths": {
                "/pets": {
                    "get": {
                        "operationId": "listPets",
                        "parameters": [
                            {
                                "name": "limit",
                                "in": "query",
                                "schema": {"type": "integer", "maximum": 100},
                            }
                        ],
                        "responses": {
                            "200": {
                                "description": "ok",
                                "content": {
                                    "application/json": {
                                        "schema": {"type": "array", "items": PET_REF}
                                    }
                                },
                            }
                        },
                    },
                    "post": {
                        "operationId": "createPet",
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": NEW_PET_REF}},
                        },
                        "responses": {
                            "201": {
                                "description": "made",
                                "content": {"application/json": {"schema": PET_REF}},
                            }
                        },
                    },
                },
                "/pets/{petId}": {
                    "get": {
                        "operationId": "getPet",
                        "parameters": [
                            {
                                "name": "petId",
                                "in": "path",
                                "required": True,
                                "schema": {"type": "integer"},
                            }
                        ],
                        "responses": {
                            "200": {
                                "description": "ok",
                                "content": {"application/json": {"schema": PET_REF}},
                            }
                        },
                    }
                },
                "/bad-pet": {
                    "get": {
                        "operationId": "badPet",
                        "responses": {
                            "200": {
                                "description": "ok",
                                "content": {"application/json": {"schema": PET_REF}},
                            }
                        },
                    }
                },
            },
        }


def make_handler(remote: Remote) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _count(self, key: str) -> int:
            remote.calls[key] = remote.calls.get(key, 0) + 1
            return remote.calls[key]

        def do_GET(self) -> None:  # noqa: N802
            path, _, query = self.path.partition("?")
            n = self._count(f"GET {path}")
            if path == "/pets":
                self._send(200, list(remote.pets.values()))
            elif path.startswith("/pets/"):
                pet = remote.pets.get(int(path.rsplit("/", 1)[1]))
                self._send(200 if pet else 404, pet or {"error": "no pet"})
            elif path == "/bad-pet":
                self._send(200, {"id": "not-a-number"})
            elif path == "/flaky":
                if n <= remote.flaky_failures:
                    self._send(503, {"error": "try later"})
                else:
                    self._send(200, {"ok": True, "attempt": n})
            elif path == "/down":
                self._send(500, {"error": "down"})
            elif path == "/slow":
                time.sleep(1.5)
                self._send(200, {"slow": True})
            elif path == "/big":
                self._send(200, b"x" * 200_000, "text/plain")
            elif path == "/keyed":
                ok = self.headers.get("X-Api-Key") == API_KEY or f"api_key={API_KEY}" in query
                self._send(200 if ok else 401, {"ok": ok})
            elif path == "/basic":
                expected = base64.b64encode(f"bob:{API_KEY}".encode()).decode()
                ok = self.headers.get("Authorization") == f"Basic {expected}"
                self._send(200 if ok else 401, {"ok": ok})
            elif path == "/bearer":
                ok = self.headers.get("Authorization") == f"Bearer {API_KEY}"
                self._send(200 if ok else 401, {"ok": ok})
            elif path == "/secure":
                auth = self.headers.get("Authorization", "")
                ok = auth.startswith("Bearer ") and auth[7:] in remote.tokens_issued
                self._send(200 if ok else 401, {"secure": ok})
            elif path == "/openapi.json":
                self._send(200, remote.openapi())
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.partition("?")[0]
            n = self._count(f"POST {path}")
            body = self._body()
            if path == "/pets":
                data = json.loads(body)
                pet = {"id": max(remote.pets) + 1, **data}
                remote.pets[pet["id"]] = pet
                self._send(201, pet)
            elif path == "/flaky":
                self._send(503 if n <= remote.flaky_failures else 200, {"attempt": n})
            elif path == "/token":
                expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if (
                    self.headers.get("Authorization") != f"Basic {expected}"
                    or b"grant_type=client_credentials" not in body
                ):
                    self._send(401, {"error": "invalid_client"})
                    return
                token = f"tok-{len(remote.token_log) + 1}-abcdef"
                remote.tokens_issued.append(token)
                remote.token_log.append(token)
                self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
            elif path == "/hook":
                remote.hooks.append({"headers": dict(self.headers.items()), "body": body})
                self._send(remote.hook_status, {"received": True})
            else:
                self._send(404, {"error": "not found"})

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout tests) is expected here


def start() -> Remote:
    remote = Remote()
    server = _Server(("127.0.0.1", 0), make_handler(remote))
    server.daemon_threads = True
    remote.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return remote
