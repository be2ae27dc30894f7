"""The generated data API: `/api/t/{tenant}/apps/{app}/data/{entity}` for every entity."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from plinth import jsontext
from plinth.errors import BadRequest, PreconditionFailed
from plinth.governance.http import PrincipalDep
from plinth.http import composed
from plinth.runtime.filters import parse
from plinth.runtime.service import RecordService
from plinth.tenancy.http import TenantDep


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    records: RecordService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(prefix="/api/t/{tenant}/apps/{app}/data", tags=["data"])


def etag(record: dict[str, Any]) -> str:
    return f'"{record["version"]}"'


def if_match(header: str | None) -> int | None:
    """The version an `If-Match` header names (`"3"`, `W/"3"`), None for absent or `*`."""
    if header is None or header.strip() == "*":
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # versions are BIGINTs
        raise PreconditionFailed(
            f"If-Match {header!r} is not an ETag this API handed out", path="If-Match"
        )
    return int(text)


async def _body(request: Request) -> Any:
    return jsontext.loads(await request.body())


def _record(record: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(record, status_code=status, headers={"ETag": etag(record)})


def names(value: str | None) -> list[str] | None:
    # Each name once: `expand=policy,policy` expands policy once.
    return list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip())) if value else None


@router.post("/{entity}", status_code=201)
async def create(
    entity: str,
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    request: Request,
) -> Response:
    """Create a record, or a list of records all-or-nothing."""
    created = await platform.records.create(tenant, app, entity, await _body(request), principal)
    if isinstance(created, list):
        return JSONResponse(created, status_code=201)
    return _record(created, 201)


@router.get("/{entity}")
async def query(
    entity: str,
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    filter: str | None = Query(None, description="e.g. status eq 'open' and amount gt 10"),
    sort: str | None = Query(None, description="comma-separated fields, '-' for descending"),
    fields: str | None = Query(None, description="comma-separated fields to return"),
    expand: str | None = Query(None, description="reference fields to inline"),
    limit: int = Query(50),
    cursor: str | None = Query(None),
) -> dict[str, Any]:
    """A page of records."""
    ast = parse(filter) if filter else None
    return await platform.records.query(  # type: ignore[no-any-return]
        tenant,
        app,
        entity,
        principal,
        filter=ast,
        sort=names(sort),
        fields=names(fields),
        expand=names(expand),
        limit=limit,
        cursor=cursor,
    )


@router.get("/{entity}/{record_id}")
async def get(
    entity: str,
    record_id: str,
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
) -> Response:
    """One record; its `ETag` is its version."""
    return _record(await platform.records.get(tenant, app, entity, record_id, principal))


async def _update(
    entity: str,
    record_id: str,
    app: str,
    tenant: Any,
    platform: Any,
    principal: Any,
    request: Request,
    replace: bool,
    match: str | None,
) -> Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise BadRequest("The body is one record (an object)", path="")
    return _record(
        await platform.records.update(
            tenant,
            app,
            entity,
            record_id,
            body,
            principal,
            replace=replace,
            if_version=if_match(match),
        )
    )


@router.patch("/{entity}/{record_id}")
async def patch(
    entity: str,
    record_id: str,
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    request: Request,
    if_match_: str | None = Header(None, alias="If-Match"),
) -> Response:
    """Merge the given fields into a record (412 if `If-Match` is stale)."""
    return await _update(
        entity, record_id, app, tenant, platform, principal, request, False, if_match_
    )


@router.put("/{entity}/{record_id}")
async def put(
    entity: str,
    record_id: str,
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    request: Request,
    if_match_: str | None = Header(None, alias="If-Match"),
) -> Response:
    """Replace a record's fields (412 if `If-Match` is stale)."""
    return await _update(
        entity, record_id, app, tenant, platform, principal, request, True, if_match_
    )


@router.delete("/{entity}/{record_id}", status_code=204)
async def delete(
    entity: str,
    record_id: str,
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    if_match_: str | None = Header(None, alias="If-Match"),
) -> Response:
    """Delete a record (412 if `If-Match` is stale)."""
    await platform.records.delete(
        tenant, app, entity, record_id, principal, if_version=if_match(if_match_)
    )
    return Response(status_code=204)
