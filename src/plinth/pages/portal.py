"""The end-user portal: published apps at `/a/{tenant}/{app}/…`.

The HTML shell is tiny and never cached; it loads the shared runtime and the app version's
compiled module, both under content-hashed names served immutable. The end user signs in
with a password or OpenID Connect (`session.py`: the refresh token in an HttpOnly cookie, the
access token in memory), and every data call goes to the data API under that identity.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from plinth.compiler.cache import ArtifactCache
from plinth.compiler.targets import TARGETS, AppVersion, Artifact
from plinth.compiler.targets import webcomponents as wc
from plinth.errors import NotFound
from plinth.extensions.service import PluginService
from plinth.governance.http import PrincipalDep
from plinth.http import composed
from plinth.metadata.service import MetadataService
from plinth.pages.session import user_view
from plinth.tenancy.http import TenantDep
from plinth.tenancy.service import TenantService


class Services(Protocol):
    """What these routes use of the composition root (server/platform.py provides it)."""

    metadata: MetadataService
    artifacts: ArtifactCache
    plugins: PluginService
    tenants: TenantService


PlatformDep = Annotated[Services, Depends(composed)]

router = APIRouter(tags=["portal"])

IMMUTABLE = "public, max-age=31536000, immutable"
HASH_CHARS = 16


def _immutable(request: Request, art: Artifact) -> Response:
    headers = {"Cache-Control": IMMUTABLE, "ETag": art.etag}
    if request.headers.get("if-none-match") == art.etag:
        return Response(status_code=304, headers=headers)
    return Response(art.body, media_type="text/javascript; charset=utf-8", headers=headers)


async def _published(platform: Any, tenant_slug: str, app_slug: str) -> tuple[Any, Any, Any]:
    """(tenant, app, active version); one NotFound for every way of not being published."""
    missing = NotFound(f"No published app {app_slug!r} here", path="app")
    tenant = await platform.tenants.find(tenant_slug)
    if tenant is None:
        raise missing
    try:
        app = await platform.metadata.get_app(tenant, app_slug)
    except NotFound:
        raise missing from None
    version = await platform.metadata.active_version(tenant, app_slug)
    if version is None or not version.definition.get("pages"):
        raise missing
    return tenant, app, version


def module_for(platform: Any, tenant: Any, app: Any, version: Any) -> Artifact:
    """The compiled module of a version (from the cache after the first request)."""
    target = TARGETS.get("webcomponents")
    assert target is not None  # a built-in
    cache: ArtifactCache = platform.artifacts
    return cache.get(
        AppVersion(
            tenant.slug, app.slug, app.name, version.number, version.hash, version.definition
        ),
        target,
    )


@router.get("/a/-/{name}", include_in_schema=False)
async def runtime_file(name: str, request: Request) -> Response:
    """The shared browser runtime, under its content-hashed name."""
    if name != wc.runtime_name():
        raise NotFound("No such runtime file", path="name")
    return _immutable(request, wc.runtime())


@router.get("/a/{tenant}/-/plugins/{name}/{file}", include_in_schema=False)
async def plugin_module(
    tenant: str, name: str, file: str, request: Request, platform: PlatformDep
) -> Response:
    """A plugin's UI module (custom elements), only for a tenant that installed the plugin
    with `ui` approved; immutable by its SHA-256, never sniffed as anything but JavaScript."""
    sha = file.removesuffix(".js")
    if not file.endswith(".js") or len(sha) != 64 or sha.strip("0123456789abcdef"):
        raise NotFound("No such plugin module", path="file")
    body = await platform.plugins.ui_module(tenant, name, sha)
    headers = {"Cache-Control": IMMUTABLE, "ETag": f'"{sha}"', "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


async def _plugin_elements(platform: Any, tenant: Any) -> str:
    """The tenant's plugin elements (kind -> module URL), as JSON safe inside <script>."""
    plugins = getattr(platform, "plugins", None)
    found = await plugins.ui_components(tenant) if plugins is not None else []
    data = json.dumps({c["kind"]: c["url"] for c in found})
    return data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get("/a/{tenant}/{app}/-/me")
async def whoami(app: str, tenant: TenantDep, principal: PrincipalDep) -> dict[str, Any]:
    """The signed-in end user, as the portal shows it (401 without a valid credential)."""
    return {**user_view(principal), "tenant": tenant.slug}


@router.get("/a/{tenant}/{app}/-/app.{digest}.js", include_in_schema=False)
async def app_module(
    tenant: str, app: str, digest: str, request: Request, platform: PlatformDep
) -> Response:
    """The compiled Web Components module of the active version (immutable by its hash)."""
    t, a, version = await _published(platform, tenant, app)
    if digest != version.hash[:HASH_CHARS]:
        raise NotFound("That app version is no longer active; reload the page", path="digest")
    return _immutable(request, module_for(platform, t, a, version))


SHELL = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="modulepreload" href="{runtime}">
<style>{css}</style>
<script type="module" src="{module}"></script>
<script>/* renew the session while the modules load */
window.plinthPlugins={plugins};
window.plinthSession={{tenant:"{tenant}",response:fetch("/a/{tenant}/-/session/refresh",
{{method:"POST",credentials:"same-origin",headers:{{"x-plinth-portal":"1"}}}})}};</script>
</head><body><{shell}><p class="pl-muted">Loading…</p></{shell}></body></html>
"""

# The portal's one stylesheet, inlined into the shell so the first render needs no request.
CSS = (Path(__file__).with_name("portal.css")).read_text()


HOME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{css}</style></head>
<body><main class="pl-page"><h1>{title}</h1><ul class="pl-apps">{items}</ul></main></body></html>
"""


@router.get("/a/{tenant}", include_in_schema=False)
@router.get("/a/{tenant}/", include_in_schema=False)
async def home(tenant: str, platform: PlatformDep) -> Response:
    """A tenant's portal: its one published app, or the list of them to choose from (never the
    designer's sign-in: end users come here)."""
    found = await platform.tenants.find(tenant)
    published = []
    if found is not None:
        for app in await platform.metadata.list_apps(found):
            version = await platform.metadata.active_version(found, app.slug)
            if version is not None and version.definition.get("pages"):
                published.append(app)
    if not published:
        raise NotFound(f"No published app here for tenant {tenant!r}", path="tenant")
    assert found is not None
    if len(published) == 1:
        return RedirectResponse(f"/a/{found.slug}/{published[0].slug}/", status_code=302)
    items = "".join(
        f'<li><a href="/a/{found.slug}/{a.slug}/">{html.escape(a.name)}</a></li>' for a in published
    )
    title = html.escape(found.name or found.slug)
    body = HOME.format(title=title, css=CSS, items=items)
    return HTMLResponse(body, headers={"Cache-Control": "no-cache"})


@router.get("/a/{tenant}/{app}", include_in_schema=False)
@router.get("/a/{tenant}/{app}/{rest:path}", include_in_schema=False)
async def shell(tenant: str, app: str, platform: PlatformDep, rest: str = "") -> HTMLResponse:
    """The HTML shell of a published app; the module routes `rest` to a page in the browser."""
    t, a, version = await _published(platform, tenant, app)
    body = SHELL.format(
        title=html.escape(a.name),
        css=CSS,
        runtime=wc.runtime_url(),
        module=f"/a/{t.slug}/{a.slug}/-/app.{version.hash[:HASH_CHARS]}.js",
        shell=f"plinth-app-{a.slug}",
        tenant=t.slug,
        plugins=await _plugin_elements(platform, t),
    )
    # The shell names the active version, so it must be revalidated on each visit.
    return HTMLResponse(body, headers={"Cache-Control": "no-cache"})
