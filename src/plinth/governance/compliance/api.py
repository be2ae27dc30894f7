"""HTTP routes of the compliance engine: profile, check, fix, waivers, report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from plinth.governance.access import Authorizer
from plinth.governance.compliance.report import render_html
from plinth.governance.compliance.service import ComplianceService
from plinth.governance.http import PrincipalDep, require
from plinth.http import composed
from plinth.tenancy.http import TenantDep
from plinth.tenancy.regions import Regions


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    authorizer: Authorizer
    compliance: ComplianceService
    regions: Regions


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(prefix="/api/t/{tenant}", tags=["compliance"])


class FixIn(BaseModel):
    apply: bool = Field(False, description="Apply the patch to the draft (default: dry run)")
    classify: bool = Field(False, description="Also classify fields as their names suggest")
    revision: int | None = Field(None, description="Refuse if the draft is no longer this")


class WaiverIn(BaseModel):
    rule: str = Field(description="Rule id, e.g. gdpr.retention")
    reason: str = Field(min_length=1, max_length=2000)
    until: datetime
    path: str | None = Field(None, description="Only this path (default: the whole app)")


@router.get("/compliance/profile")
async def get_profile(
    tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The tenant's compliance profile and its regions."""
    require(platform, principal, "tenant.read", tenant)
    return {
        "profile": platform.compliance.profile(tenant).as_dict(),
        "regions": [platform.regions.get(r).public() for r in platform.regions.of_tenant(tenant)],
    }


@router.put("/compliance/profile")
async def put_profile(
    tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep, body: Any = Body()
) -> dict[str, Any]:
    """Set the compliance profile (platform admins: it decides where data may live)."""
    require(platform, principal, "tenant.manage", tenant, kind="tenant")
    profile = await platform.compliance.set_profile(tenant, body, principal.audit_name())
    return {"profile": profile.as_dict()}


@router.get("/apps/{app}/compliance")
async def check_app(
    app: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep, ref: str = "draft"
) -> dict[str, Any]:
    """Check the draft (or version `ref`) against the tenant's packs, without publishing."""
    require(platform, principal, "draft.read", tenant, ident=app)
    outcome = await platform.compliance.check(tenant, app, ref)
    return {
        "packs": outcome.packs,
        "blocking": len(outcome.blocking()),
        "violations": [v.as_dict() for v in outcome.violations],
        "remediation": outcome.remediation(),
    }


@router.post("/apps/{app}/compliance/fix")
async def fix_app(
    app: str,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    body: FixIn | None = None,
) -> dict[str, Any]:
    """The JSON Patch that fixes the draft; applied as one reviewable draft change if asked."""
    body = body or FixIn.model_validate({})
    require(platform, principal, "draft.edit" if body.apply else "draft.read", tenant, ident=app)
    return await platform.compliance.fix(
        tenant,
        app,
        apply=body.apply,
        by=principal.audit_name(),
        classify_fields=body.classify,
        if_revision=body.revision,
    )


@router.post("/apps/{app}/compliance/waivers", status_code=201)
async def waive(
    app: str, body: WaiverIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Waive a rule for this app until a date, with a reason (recorded and audited)."""
    require(platform, principal, "app.publish", tenant, ident=app)
    waiver = await platform.compliance.waive(
        tenant,
        app,
        body.rule,
        reason=body.reason,
        until=body.until,
        by=principal.audit_name(),
        path=body.path,
    )
    return waiver.public()


@router.get("/apps/{app}/compliance/waivers")
async def list_waivers(
    app: str, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Every waiver of this app, active or expired."""
    require(platform, principal, "app.read", tenant, ident=app)
    return {"items": [w.public() for w in await platform.compliance.waivers(tenant, app)]}


@router.get(
    "/compliance/report",
    response_model=None,
    responses={
        200: {
            "description": "The report, as JSON or (format=html) a page",
            "content": {"application/json": {}, "text/html": {"schema": {"type": "string"}}},
        }
    },
)
async def report(
    request: Request,
    tenant: TenantDep,
    platform: PlatformDep,
    principal: PrincipalDep,
    app: str | None = None,
    country: str | None = Query(None, pattern="^[A-Z]{2}$"),
    format: str | None = Query(None, pattern="^(json|html)$"),
) -> dict[str, Any] | HTMLResponse:
    """Per app and country: rules, pass/fail/waived, remediations, evidence (JSON or HTML)."""
    require(platform, principal, "app.read", tenant, ident=app or "")
    body = await platform.compliance.report(tenant, app, country)
    wants_html = format == "html" or (
        format is None and "text/html" in request.headers.get("accept", "")
    )
    return HTMLResponse(render_html(body)) if wants_html else body


# -- runtime enforcement: data-subject rights, retention, field keys ------------------------


class SubjectIn(BaseModel):
    subject: str = Field(
        min_length=1, max_length=500, description="The subject's key value (e.g. an e-mail address)"
    )
    app: str | None = Field(None, description="Only this app (default: every app)")


class RetentionIn(BaseModel):
    app: str | None = Field(None, description="Only this app (default: every app)")


@router.post("/compliance/subjects/export")
async def export_subject(
    body: SubjectIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Every record of a data subject across the tenant's apps, as JSON (audited)."""
    require(platform, principal, "subject.export", tenant, kind="tenant")
    return await platform.compliance.export_subject(
        tenant, body.subject, app=body.app, by=principal.audit_name()
    )


@router.post("/compliance/subjects/erase")
async def erase_subject(
    body: SubjectIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Delete or anonymise a subject's records and destroy the subject's keys (audited)."""
    require(platform, principal, "subject.erase", tenant, kind="tenant")
    return await platform.compliance.erase_subject(
        tenant, body.subject, app=body.app, by=principal.audit_name()
    )


@router.post("/compliance/retention/run")
async def run_retention(
    body: RetentionIn, tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Apply the retention rules now (the `retention` workflow node does it on schedule)."""
    require(platform, principal, "compliance.retention", tenant, kind="tenant")
    return await platform.compliance.run_retention(tenant, body.app, by=principal.audit_name())


@router.post("/compliance/keys/rotate")
async def rotate_keys(
    tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep
) -> dict[str, Any]:
    """A new field-encryption key for the tenant; subject keys are re-wrapped with it."""
    require(platform, principal, "compliance.keys", tenant, kind="tenant")
    return await platform.compliance.rotate_keys(tenant, by=principal.audit_name())
