"""Sign-in for the web IDE: password or the tenant's OpenID Connect, kept as a cookie session.

The same users and the same credentials as the portal (`pages/session.py`), kept the same
way: the refresh token only in an `HttpOnly`, `SameSite=Strict` cookie scoped to
`/api/auth/{tenant}/session`, the 15-minute access token in the page's memory. Every POST must
carry `X-Plinth-IDE: 1`, which a cross-site form cannot send (CSRF). What a person may do in
the IDE (design, publish, administer) is decided by policy; `GET /api/t/{t}/me` tells the IDE.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from plinth.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from plinth.governance.access import Authorizer, Resource
from plinth.governance.browser import SessionCookie, secure
from plinth.governance.http import PrincipalDep
from plinth.governance.identity import Session
from plinth.governance.login import password_login
from plinth.governance.oidc import OIDCConfig, map_claims, new_browser_binding
from plinth.governance.principal import Principal
from plinth.governance.service import Governance
from plinth.http import composed, problem_response
from plinth.tenancy.http import TenantDep
from plinth.tenancy.models import Tenant
from plinth.tenancy.service import TenantService


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    authorizer: Authorizer
    governance: Governance
    tenants: TenantService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(tags=["identity"])

SESSION = SessionCookie("plinth_ide_refresh", "/api/auth/{tenant}/session", "X-Plinth-IDE", "IDE")
COOKIE = SESSION.name
NEXT_COOKIE = "plinth_ide_next"
BIND_COOKIE = "plinth_ide_bind"

# What the IDE shows or hides, each the action policy decides.
CAPABILITIES = {
    "design": ("draft.edit", "app"),
    "publish": ("app.publish", "app"),
    "create_apps": ("app.create", "app"),
    "delete_apps": ("app.delete", "app"),
    "administer": ("user.manage", "tenant"),
    "tokens": ("token.manage", "tenant"),
    "audit": ("audit.read", "tenant"),
}


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


def me_view(platform: Services, principal: Principal, tenant: Tenant) -> dict[str, Any]:
    """Who the caller is and what the IDE may offer them."""
    can = {}
    for name, (action, kind) in CAPABILITIES.items():
        resource = Resource(kind, tenant.slug, tenant_id=tenant.id)
        can[name] = platform.authorizer.decide(principal, action, resource).allowed
    attrs = dict(principal.attrs)
    groups = attrs.pop("groups", [])
    return {
        "id": principal.id,
        "name": principal.audit_name(),
        "kind": principal.kind,
        "tenant": tenant.slug,
        "roles": sorted(principal.roles),
        "groups": list(groups) if isinstance(groups, list) else [],
        "attrs": attrs,
        "can": can,
    }


def _body(platform: Services, session: Session, tenant: Tenant) -> dict[str, Any]:
    principal = platform.governance.identity.authenticate(session.access_token)
    return {
        "access_token": session.access_token,
        "token_type": session.token_type,
        "expires_in": session.expires_in,
        "user": me_view(platform, principal, tenant),
    }


async def _tenant(platform: Services, slug: str) -> Tenant:
    found = await platform.tenants.find(slug)
    if found is None:
        raise NotFound(f"No tenant named {slug!r}", path="tenant")
    return found


@router.get("/api/t/{tenant}/me")
async def me(tenant: TenantDep, platform: PlatformDep, principal: PrincipalDep) -> dict[str, Any]:
    """The caller (a user or an API token) and what they may do in the IDE."""
    return me_view(platform, principal, tenant)


@router.get("/api/auth/{tenant}/session/providers")
async def providers(tenant: str, platform: PlatformDep) -> dict[str, Any]:
    """How people of this tenant sign in to the IDE: password, and OIDC when configured."""
    found = await _tenant(platform, tenant)
    raw = found.settings.get("oidc")
    if not isinstance(raw, dict) or not raw.get("issuer"):
        return {"password": True, "oidc": None}
    label = str(raw.get("label") or urlsplit(str(raw["issuer"])).hostname or "your provider")
    url = f"/api/auth/{tenant}/session/oidc/login"
    return {"password": True, "oidc": {"label": label, "url": url}}


@router.post(
    "/api/auth/{tenant}/session/login",
    responses={401: {"description": "Wrong username or password"}},
)
async def login(
    body: LoginIn, tenant: str, request: Request, response: Response, platform: PlatformDep
) -> dict[str, Any]:
    """Password sign-in: the access token in the body, the refresh token in the cookie."""
    SESSION.check_csrf(request)
    client = request.client.host if request.client else None
    found, session = await password_login(
        platform, tenant, body.username, body.password, client, via="ide"
    )
    SESSION.set(response, request, tenant, session.refresh_token)
    response.headers["Cache-Control"] = "no-store"
    return _body(platform, session, found)


@router.post("/api/auth/{tenant}/session/refresh")
async def refresh(tenant: str, request: Request, platform: PlatformDep) -> Response:
    """A new access token from the cookie's refresh token (which is rotated)."""
    SESSION.check_csrf(request)
    token = request.cookies.get(COOKIE)
    found = await platform.tenants.find(tenant)
    try:
        if not token or found is None:
            raise Unauthenticated("Not signed in")
        session = await platform.governance.identity.refresh(token, found.id)
    except Unauthenticated as exc:
        failed = problem_response(exc, request)  # and the stale cookie goes
        SESSION.clear(failed, request, tenant)
        return failed
    ok = JSONResponse(_body(platform, session, found), headers={"Cache-Control": "no-store"})
    SESSION.set(ok, request, tenant, session.refresh_token)
    return ok


@router.post("/api/auth/{tenant}/session/logout", status_code=204)
async def logout(tenant: str, request: Request, platform: PlatformDep) -> Response:
    """Sign out: revoke the refresh token, refuse the access tokens issued until now (other
    sessions of the person refresh theirs) and drop the cookie."""
    SESSION.check_csrf(request)
    token = request.cookies.get(COOKIE)
    found = await platform.tenants.find(tenant)
    if token and found is not None:
        await platform.governance.sign_out(found.id, token)
        await platform.governance.record(found.id, None, "auth.logout", via="ide")
    done = Response(status_code=204)
    SESSION.clear(done, request, tenant)
    return done


def _safe_next(target: str | None) -> str:
    """A path of this server (never another host: no open redirect)."""
    if (
        target
        and target.startswith("/")
        and "//" not in target
        and "\\" not in target
        and not urlsplit(target).netloc
    ):
        return target
    raise BadRequest("`next` must be a path on this server", path="next")


def _oidc_cookie(response: Response, request: Request, tenant: str, name: str, value: str) -> None:
    # Lax, not Strict: they must come back with the provider's (cross-site) redirect.
    response.set_cookie(
        name,
        value,
        max_age=600,
        path=f"{SESSION.path(tenant)}/oidc",
        httponly=True,
        samesite="lax",
        secure=secure(request),
    )


@router.get("/api/auth/{tenant}/session/oidc/login", status_code=302)
async def oidc_login(
    tenant: str, request: Request, platform: PlatformDep, next: str = "/"
) -> Response:
    """Start OIDC sign-in to the IDE: remember where to return and which browser started
    it, go to the tenant's provider."""
    back = _safe_next(next)
    found = await _tenant(platform, tenant)
    config = OIDCConfig.of(found.settings)
    callback = str(request.url_for("ide_oidc_callback", tenant=tenant))
    binding = new_browser_binding()
    url = await platform.governance.oidc.authorization_url(
        found.id, config, callback, browser=binding
    )
    done = RedirectResponse(url, status_code=302)
    _oidc_cookie(done, request, tenant, NEXT_COOKIE, back)
    _oidc_cookie(done, request, tenant, BIND_COOKIE, binding)
    return done


@router.get("/api/auth/{tenant}/session/oidc/callback", name="ide_oidc_callback", status_code=303)
async def oidc_callback(
    tenant: str, code: str, state: str, request: Request, platform: PlatformDep
) -> Response:
    """Finish OIDC sign-in: verify, map claims to roles, start the cookie session and go
    back to the IDE (which then calls `refresh` for its access token)."""
    found = await _tenant(platform, tenant)
    config = OIDCConfig.of(found.settings)
    gov = platform.governance
    try:
        claims = await gov.oidc.complete(
            found.id, config, code, state, browser=request.cookies.get(BIND_COOKIE, "")
        )
    except Unauthenticated as exc:
        reason = exc.extra.get("reason", "unverified")
        await gov.record(
            found.id, None, "auth.oidc_login", outcome="failed", via="ide", reason=reason
        )
        raise
    roles, attrs = map_claims(config, claims)
    username = str(claims.get("email") or claims["sub"])
    if not roles:
        await gov.record(found.id, username, "auth.oidc_login", outcome="no_role", via="ide")
        raise Forbidden("Your identity provider account maps to no role in this tenant")
    user = await gov.identity.upsert_oidc_user(
        found.id, f"{config.issuer}|{claims['sub']}", username, roles, attrs
    )
    await gov.record(found.id, username, "auth.oidc_login", roles=roles, via="ide")
    session = await gov.identity.session_for(user)
    try:
        back = _safe_next(request.cookies.get(NEXT_COOKIE))
    except BadRequest:
        back = "/"
    done = RedirectResponse(back, status_code=303)
    SESSION.set(done, request, tenant, session.refresh_token)
    done.delete_cookie(NEXT_COOKIE, path=f"{SESSION.path(tenant)}/oidc")
    done.delete_cookie(BIND_COOKIE, path=f"{SESSION.path(tenant)}/oidc")
    return done
