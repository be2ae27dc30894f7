"""End-user sign-in for the portal: password or OpenID Connect, kept as a cookie session.

Governance issues the credentials (`IdentityService.login`, `refresh`, `Governance.sign_out`, and
the OIDC code flow); this module decides how a browser keeps them:

- the **refresh token** lives only in an `HttpOnly`, `SameSite=Strict` cookie scoped to
  `/a/{tenant}/-/session` (and `Secure` over HTTPS). Page scripts never see it, so an injected
  script cannot steal a 14-day credential; it is sent only to the refresh and sign-out routes.
- the **access token** (a 15-minute JWT) is returned in the body and kept in memory by the
  page, which sends it as `Authorization: Bearer` to the data API. Nothing is in
  `localStorage`/`sessionStorage`; a reload signs in again through the cookie.

The data API stays bearer-only, so it needs no CSRF defence. The session routes do: besides
`SameSite=Strict`, every POST must carry the `X-Plinth-Portal` header, which a cross-site form
cannot send and a cross-site script can only send after a CORS preflight we never grant.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from plinth.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from plinth.governance.browser import SessionCookie, secure
from plinth.governance.identity import Session, User
from plinth.governance.login import password_login
from plinth.governance.oidc import OIDCConfig, map_claims, new_browser_binding
from plinth.governance.service import Governance
from plinth.http import composed, problem_response
from plinth.tenancy.service import TenantService


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    governance: Governance
    tenants: TenantService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(tags=["portal"])

SESSION = SessionCookie("plinth_refresh", "/a/{tenant}/-/session", "X-Plinth-Portal", "portal")
COOKIE = SESSION.name
NEXT_COOKIE = "plinth_oidc_next"


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


def user_view(user: Any) -> dict[str, Any]:
    """What the page may know about its user (also the `user` of bindings)."""
    return {
        "id": user.id,
        "name": user.name or user.id,
        "kind": user.kind,
        "roles": sorted(user.roles),
        "attrs": dict(user.attrs),
    }


def _body(platform: Any, session: Session, tenant: str) -> dict[str, Any]:
    principal = platform.governance.identity.authenticate(session.access_token)
    return {
        "access_token": session.access_token,
        "token_type": session.token_type,
        "expires_in": session.expires_in,
        "user": {**user_view(principal), "tenant": tenant},
    }


async def _tenant(platform: Any, slug: str) -> Any:
    found = await platform.tenants.find(slug)
    if found is None:
        raise NotFound(f"No tenant named {slug!r}", path="tenant")
    return found


def _oidc_label(settings: dict[str, Any]) -> str | None:
    raw = settings.get("oidc")
    if not isinstance(raw, dict) or not raw.get("issuer"):
        return None
    return str(raw.get("label") or urlsplit(str(raw["issuer"])).hostname or "your provider")


@router.get("/a/{tenant}/-/session/providers")
async def providers(tenant: str, platform: PlatformDep) -> dict[str, Any]:
    """How end users of this tenant can sign in: password, and OIDC when configured."""
    found = await _tenant(platform, tenant)
    label = _oidc_label(found.settings)
    oidc = {"label": label, "url": f"/a/{tenant}/-/oidc/login"} if label else None
    return {"password": True, "oidc": oidc}


@router.post("/a/{tenant}/-/session/login")
async def login(
    body: LoginIn, tenant: str, request: Request, response: Response, platform: PlatformDep
) -> dict[str, Any]:
    """Password sign-in: the access token in the body, the refresh token in the cookie."""
    SESSION.check_csrf(request)
    client = request.client.host if request.client else None
    _, session = await password_login(
        platform, tenant, body.username, body.password, client, via="portal"
    )
    SESSION.set(response, request, tenant, session.refresh_token)
    return _body(platform, session, tenant)


@router.post("/a/{tenant}/-/session/refresh")
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
    ok = JSONResponse(_body(platform, session, tenant), headers={"Cache-Control": "no-store"})
    SESSION.set(ok, request, tenant, session.refresh_token)
    return ok


@router.post("/a/{tenant}/-/session/logout", status_code=204)
async def logout(tenant: str, request: Request, platform: PlatformDep) -> Response:
    """Sign out: revoke the refresh token and drop the cookie."""
    SESSION.check_csrf(request)
    token = request.cookies.get(COOKIE)
    found = await platform.tenants.find(tenant)
    if token and found is not None:
        await platform.governance.sign_out(found.id, token)
        await platform.governance.record(found.id, None, "auth.logout", via="portal")
    done = Response(status_code=204)
    SESSION.clear(done, request, tenant)
    return done


def _safe_next(tenant: str, target: str | None) -> str:
    """Only a path inside this tenant's portal (never another host: no open redirect)."""
    prefix = f"/a/{tenant}/"
    if (
        target
        and target.startswith(prefix)
        and "//" not in target
        and "\\" not in target
        and not urlsplit(target).netloc
    ):
        return target
    raise BadRequest(f"`next` must be a path under {prefix}", path="next")


# Binds an OIDC sign-in to the browser that started it (login CSRF): a random value here,
# its hash in the signed `state`; the callback refuses a state this browser did not start.
BIND_COOKIE = "plinth_oidc_bind"


def _oidc_path(tenant: str) -> str:
    return f"/a/{tenant}/-/oidc"  # the portal's OIDC routes: login and callback


@router.get("/a/{tenant}/-/oidc/login", include_in_schema=False)
async def oidc_login(tenant: str, next: str, request: Request, platform: PlatformDep) -> Response:
    """Start OIDC sign-in from the portal: remember where to return and which browser
    started it, go to the provider."""
    back = _safe_next(tenant, next)
    found = await _tenant(platform, tenant)
    config = OIDCConfig.of(found.settings)
    callback = str(request.url_for("portal_oidc_callback", tenant=tenant))
    binding = new_browser_binding()
    url = await platform.governance.oidc.authorization_url(
        found.id, config, callback, browser=binding
    )
    done = RedirectResponse(url, status_code=302)
    # Lax, not Strict: they must come back with the provider's (cross-site) redirect.
    done.set_cookie(
        NEXT_COOKIE,
        back,
        max_age=600,
        path=_oidc_path(tenant),
        httponly=True,
        samesite="lax",
        secure=secure(request),
    )
    done.set_cookie(
        BIND_COOKIE,
        binding,
        max_age=600,
        path=_oidc_path(tenant),
        httponly=True,
        samesite="lax",
        secure=secure(request),
    )
    return done


@router.get("/a/{tenant}/-/oidc/callback", name="portal_oidc_callback", include_in_schema=False)
async def oidc_callback(
    tenant: str, code: str, state: str, request: Request, platform: PlatformDep
) -> Response:
    """Finish OIDC sign-in: verify, map claims to roles, start the cookie session."""
    found = await _tenant(platform, tenant)
    config = OIDCConfig.of(found.settings)
    gov = platform.governance
    try:
        claims = await gov.oidc.complete(
            found.id, config, code, state, browser=request.cookies.get(BIND_COOKIE, "")
        )
    except Unauthenticated as exc:
        await gov.record(
            found.id,
            None,
            "auth.oidc_login",
            outcome="failed",
            via="portal",
            reason=exc.extra.get("reason", "unverified"),
        )
        raise
    roles, attrs = map_claims(config, claims)
    username = str(claims.get("email") or claims["sub"])
    if not roles:
        await gov.record(found.id, username, "auth.oidc_login", outcome="no_role", via="portal")
        raise Forbidden("Your identity provider account maps to no role in this tenant")
    user: User = await gov.identity.upsert_oidc_user(
        found.id, f"{config.issuer}|{claims['sub']}", username, roles, attrs
    )
    await gov.record(found.id, username, "auth.oidc_login", roles=roles, via="portal")
    session = await gov.identity.session_for(user)
    try:
        back = _safe_next(tenant, request.cookies.get(NEXT_COOKIE))
    except BadRequest:
        back = f"/a/{tenant}/"
    done = RedirectResponse(back, status_code=303)
    SESSION.set(done, request, tenant, session.refresh_token)
    done.delete_cookie(NEXT_COOKIE, path=_oidc_path(tenant))
    done.delete_cookie(BIND_COOKIE, path=_oidc_path(tenant))
    return done
