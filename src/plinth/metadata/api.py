"""HTTP routes of the metadata repository: apps, draft, publish, versions, diff, rollback."""

from __future__ import annotations

import re
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from pydantic import BaseModel, Field

from plinth.errors import PreconditionFailed
from plinth.governance.access import Authorizer
from plinth.governance.http import PrincipalDep, require
from plinth.http import composed
from plinth.metadata.models import Draft
from plinth.metadata.service import AppFiles, MetadataService
from plinth.tenancy.http import TenantDep


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    authorizer: Authorizer
    files: AppFiles
    metadata: MetadataService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(prefix="/api/t/{tenant}/apps", tags=["apps"])


class AppIn(BaseModel):
    slug: str = Field(description="2-40 lower-case letters, digits or '-'")
    name: str | None = None
    description: str = ""


class PublishIn(BaseModel):
    message: str = ""
    allow_destructive: bool = Field(False, description="Allow changes that destroy data")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Options for later pipeline steps (waivers …)"
    )


class RollbackIn(BaseModel):
    version: int = Field(ge=1)
    reset_draft: bool = Field(False, description="Also make that version the draft")
    allow_destructive: bool = False


def _draft_body(draft: Draft, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = draft.etag
    return {
        "revision": draft.revision,
        "updated_at": draft.updated_at.isoformat(),
        "updated_by": draft.updated_by,
        "definition": draft.definition,
    }


def _revision(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    # ASCII digits only (`isdigit` also takes '²'), and few enough for `int`.
    if not re.fullmatch(r"r[0-9]{1,18}", tag):
        raise PreconditionFailed(f"If-Match {if_match!r} is not a draft ETag", path="If-Match")
    return int(tag[1:])


@router.post("", status_code=201)
async def create_app(
    body: AppIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """Create an app with an empty draft."""
    require(platform, principal, "app.create", tenant)
    app = await platform.metadata.create_app(
        tenant, body.slug, body.name, body.description, by=principal.audit_name()
    )
    return app.public()


class CloneIn(BaseModel):
    slug: str = Field(min_length=1, max_length=40)
    name: str | None = Field(default=None, max_length=200)


@router.post("/{app}/clone", status_code=201)
async def clone_app(
    app: str, body: CloneIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """Create an app whose draft is a copy of this app's draft (no versions, no data)."""
    require(platform, principal, "draft.read", tenant, ident=app)
    require(platform, principal, "app.create", tenant, ident=body.slug)
    cloned = await platform.metadata.clone_app(
        tenant, app, body.slug, body.name, by=principal.audit_name()
    )
    return cloned.public()


@router.get("")
async def list_apps(tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The apps of the tenant."""
    require(platform, principal, "app.read", tenant)
    return {"items": [a.public() for a in await platform.metadata.list_apps(tenant)]}


@router.get("/{app}")
async def get_app(
    app: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """One app."""
    require(platform, principal, "app.read", tenant, ident=app)
    return (await platform.metadata.get_app(tenant, app)).public()


@router.delete("/{app}", status_code=204)
async def delete_app(
    app: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> Response:
    """Delete an app with its draft and versions."""
    require(platform, principal, "app.delete", tenant, ident=app)
    await platform.metadata.delete_app(tenant, app, by=principal.audit_name())
    return Response(status_code=204)


@router.get("/{app}/draft")
async def get_draft(
    app: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep, response: Response
) -> dict:
    """The app's draft definition, with its revision as ETag."""
    require(platform, principal, "draft.read", tenant, ident=app)
    return _draft_body(await platform.metadata.get_draft(tenant, app), response)


@router.put("/{app}/draft")
async def put_draft(
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    response: Response,
    definition: Annotated[Any, Body()],
    if_match: Annotated[str | None, Header()] = None,
) -> dict:
    """Replace the draft; refused with every fault's path if invalid."""
    require(platform, principal, "draft.edit", tenant, ident=app)
    draft = await platform.metadata.put_draft(
        tenant, app, definition, by=principal.audit_name(), if_revision=_revision(if_match)
    )
    return _draft_body(draft, response)


@router.patch(
    "/{app}/draft",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json-patch+json": {
                    "schema": {"type": "array", "items": {"type": "object"}}
                }
            }
        }
    },
)
async def patch_draft(
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    response: Response,
    ops: Annotated[Any, Body()],
    if_match: Annotated[str | None, Header()] = None,
) -> dict:
    """Apply an RFC 6902 JSON Patch to the draft, atomically."""
    require(platform, principal, "draft.edit", tenant, ident=app)
    draft = await platform.metadata.patch_draft(
        tenant, app, ops, by=principal.audit_name(), if_revision=_revision(if_match)
    )
    return _draft_body(draft, response)


class RenameFieldIn(BaseModel):
    entity: str = Field(min_length=1, max_length=63)
    field_id: str = Field(min_length=1, max_length=40, description="the field's stable `id`")
    to: str = Field(min_length=1, max_length=63, description="the new name")


@router.post(
    "/{app}/draft/refactor/rename-field",
    responses={
        404: {"description": "No such entity, or no field with this id"},
        409: {"description": "The entity already has a field with the new name"},
    },
)
async def rename_field(
    app: str,
    body: RenameFieldIn,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict:
    """Rename a field by its stable id and rewrite every reference to it in the draft
    (workflow expressions and inputs, forms, page props and bindings, policies, entities)."""
    require(platform, principal, "draft.edit", tenant, ident=app)
    draft, renamed = await platform.metadata.rename_field(
        tenant,
        app,
        body.entity,
        body.field_id,
        body.to,
        by=principal.audit_name(),
        if_revision=_revision(if_match),
    )
    response.headers["ETag"] = draft.etag
    return {
        "revision": draft.revision,
        "entity": renamed.entity,
        "from": renamed.old,
        "to": renamed.new,
        "rewritten": renamed.rewritten,
    }


@router.post("/{app}/publish")
async def publish(
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    response: Response,
    body: PublishIn | None = None,
) -> dict:
    """Freeze the draft into a new active version (no-op if nothing changed)."""
    require(platform, principal, "app.publish", tenant, ident=app)
    body = body or PublishIn.model_validate({})
    outcome = await platform.metadata.publish(
        tenant,
        app,
        principal,
        message=body.message,
        options={**body.options, "allow_destructive": body.allow_destructive},
    )
    response.status_code = 201 if outcome.created else 200
    return outcome.as_dict()


@router.get("/{app}/versions")
async def list_versions(
    app: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """Every published version, oldest first."""
    require(platform, principal, "version.read", tenant, ident=app)
    found, versions = await platform.metadata.versions(tenant, app)
    return {
        "active": found.active_version,
        "items": [v.summary(found.active_version) for v in versions],
    }


@router.get("/{app}/versions/{number}")
async def get_version(
    app: str, number: int, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """One version with its frozen definition."""
    require(platform, principal, "version.read", tenant, ident=app)
    found = await platform.metadata.get_app(tenant, app)
    version = await platform.metadata.version(tenant, app, number)
    return version.summary(found.active_version) | {"definition": version.definition}


@router.get("/{app}/diff")
async def diff(
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    from_: Annotated[str, Query(alias="from", description="version number, 0 or 'draft'")],
    to: Annotated[str, Query(description="version number or 'draft'")] = "draft",
) -> dict:
    """A structured diff: documents and fields added, removed, changed and renamed."""
    require(platform, principal, "version.read", tenant, ident=app)
    changes = await platform.metadata.diff(tenant, app, from_, to)
    return {"from": from_, "to": to, "changes": changes}


@router.post("/{app}/rollback")
async def rollback(
    app: str, body: RollbackIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict:
    """Activate an older version."""
    require(platform, principal, "app.rollback", tenant, ident=app)
    outcome = await platform.metadata.rollback(
        tenant,
        app,
        body.version,
        principal,
        reset_draft=body.reset_draft,
        options={"allow_destructive": body.allow_destructive},
    )
    return outcome.as_dict()


@router.get("/{app}/export")
async def export(
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    version: Annotated[str, Query(description="'draft', 'active' or a number")] = "draft",
) -> dict:
    """The app as the YAML files `plinth app export` writes."""
    require(platform, principal, "draft.read", tenant, ident=app)
    ref: int | str = int(version) if version.isdigit() else version
    return {"files": await platform.files.export(tenant, app, ref)}
