"""The data API's hottest routes as plain ASGI: one record, a page of records, and a create.

Served by FastAPI they pay, per request, for its router (every layer's routes are tried in
turn), its dependency solving and its response model; here the same steps run as plain code:
the bearer token is authenticated (`get_principal`), the tenant in the path resolved and the
caller checked against it (`get_tenant`), then `RecordService.get` / `query` / `create`
authorize, validate, filter and mask exactly as for the FastAPI routes, and the answer is the
same JSON, or the same `application/problem+json`.

The FastAPI routes in `runtime/api.py` stay: they make the OpenAPI document, and they serve
every request this layer does not take (HEAD, a trailing slash, a query parameter given twice
or a `limit` that is not a plain number, which FastAPI answers with its 422; a create with a
query string), so the two paths never disagree on anything but speed. `server/app.py` mounts
this layer innermost: the request limits, the gateway (rate limits, time limit, access log)
and the input checks run outside it as for any route.
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from plinth import jsontext
from plinth.errors import PlinthError, Unauthenticated
from plinth.governance.authentication import Authentication
from plinth.governance.principal import Principal
from plinth.http import PROBLEM
from plinth.runtime.api import etag, names
from plinth.runtime.filters import parse
from plinth.runtime.service import RecordService
from plinth.tenancy.http import resolve_tenant
from plinth.tenancy.models import Tenant
from plinth.tenancy.service import TenantService

_QUERY_NAMES = frozenset({"filter", "sort", "fields", "expand", "limit", "cursor"})
_JSON = b"application/json"


class Services(Protocol):
    """What the read routes use of the composition root (server/platform.py provides it)."""

    @property
    def authentication(self) -> Authentication: ...

    @property
    def tenants(self) -> TenantService: ...

    @property
    def records(self) -> RecordService: ...


# Starlette's JSONResponse's arguments, the encoder built once instead of per response.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def render(content: Any) -> bytes:
    """JSON as the FastAPI routes render it (Starlette's JSONResponse)."""
    return _ENCODER.encode(content).encode("utf-8")


class Reads:
    """`GET /api/t/{tenant}/apps/{app}/data/{entity}[/{id}]` and `POST …/data/{entity}`,
    without the generic route."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST":
            await self._create(scope, receive, send)
            return
        parts = _data_path(scope["path"])
        if parts is None:
            await self.app(scope, receive, send)
            return
        query: dict[str, str] | None = {}
        if len(parts) == 8:
            query = _plain_query(scope.get("query_string") or b"")
            if query is None:  # FastAPI's route answers it (its 422s included)
                await self.app(scope, receive, send)
                return
        try:
            body, headers = await self._serve(scope, parts, query)
        except PlinthError as error:
            await _problem(send, scope, error)
            return
        await _answer(send, 200, body, headers)

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`POST …/data/{entity}`: as `runtime.api.create` (201, the record and its ETag, or
        the list of records of a batch)."""
        parts = _data_path(scope["path"])
        if parts is None or len(parts) != 8 or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._principal(scope)
            tenant = await self._tenant(parts[3], principal)
            data = jsontext.loads(await Request(scope, receive).body())
            created = await self.services.records.create(
                tenant, parts[5], parts[7], data, principal
            )
        except PlinthError as error:
            await _problem(send, scope, error)
            return
        headers = [] if isinstance(created, list) else [(b"etag", etag(created).encode("latin-1"))]
        await _answer(send, 201, render(created), headers)

    async def _serve(
        self, scope: Scope, parts: list[str], query: dict[str, str] | None
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        principal = await self._principal(scope)
        tenant = await self._tenant(parts[3], principal)
        app, entity = parts[5], parts[7]
        records = self.services.records
        if len(parts) == 9:
            record = await records.get(tenant, app, entity, parts[8], principal)
            return render(record), [(b"etag", etag(record).encode("latin-1"))]
        assert query is not None
        text = query.get("filter")
        page = await records.query(
            tenant,
            app,
            entity,
            principal,
            filter=parse(text) if text else None,
            sort=names(query.get("sort")),
            fields=names(query.get("fields")),
            expand=names(query.get("expand")),
            limit=int(query.get("limit", 50)),
            cursor=query.get("cursor"),
        )
        return render(page), []

    async def _principal(self, scope: Scope) -> Principal:
        """As `governance.http.get_principal`: the caller of `Authorization: Bearer …`."""
        header = ""
        for key, value in scope["headers"]:
            if key == b"authorization":
                header = value.decode("latin-1")
                break
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated()
        principal = await self.services.authentication.authenticate(token.strip())
        scope.setdefault("state", {})["principal"] = principal
        return principal

    async def _tenant(self, slug: str, principal: Principal) -> Tenant:
        return await resolve_tenant(self.services.tenants, slug, principal)


def _data_path(path: str) -> list[str] | None:
    """The parts of a data API path, ['', 'api', 't', tenant, 'apps', app, 'data', entity(,
    id)], every part non-empty; None for any other path."""
    if not path.startswith("/api/t/"):
        return None
    parts = path.split("/")
    if len(parts) not in (8, 9) or parts[4] != "apps" or parts[6] != "data" or not all(parts[3:]):
        return None
    return parts


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-length", str(len(body)).encode()),
                (b"content-type", _JSON),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _plain_query(raw: bytes) -> dict[str, str] | None:
    """The list's parameters, or None when FastAPI should judge them (a name given twice, a
    `limit` that is not plain digits)."""
    if not raw:
        return {}
    found: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name not in _QUERY_NAMES:
            continue  # FastAPI ignores parameters a route does not declare
        if name in found:
            return None
        found[name] = value
    limit = found.get("limit")
    if limit is not None and not (limit.isascii() and limit.isdigit() and len(limit) <= 9):
        return None
    return found


async def _problem(send: Send, scope: Scope, error: PlinthError) -> None:
    """As `plinth.http.problem_response` for a request (instance and request id added)."""
    body = error.problem()
    body.setdefault("instance", scope["path"])
    request_id = (scope.get("state") or {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    data = render(body)
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                *headers,
                (b"content-length", str(len(data)).encode()),
                (b"content-type", PROBLEM.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
