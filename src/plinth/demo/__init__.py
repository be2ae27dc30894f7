"""The demo tenant: an insurer processing claims across countries.

`plinth demo` loads it; each layer's capability shows up here (data model, policies,
workflows, plugins, connectors and webhooks, compliance), so the demo always shows what
Plinth can do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp

from plinth.demo.ports import Services
from plinth.errors import NotFound
from plinth.governance.principal import Principal
from plinth.metadata import definition as definitions

HERE = Path(__file__).parent
TENANT = "acme-insurance"
APPS = ["claims"]
# Where the insurer's policyholders live; the packs follow (GDPR, CCPA/CPRA, LGPD, PCI DSS).
PROFILE = {"countries": ["DE", "FR", "ES", "BR", "US"], "default_country": "DE"}
# The plugins the demo installs (the claims workflow's triage calls the fraud scorer), with the
# capabilities the tenant admin approves. Sources live in the repository's examples/plugins.
# `ui`: its <fraud-badge> element runs in the portal's claim page.
PLUGINS = {"fraud-scorer": ["log", "ui"]}
EXAMPLES = HERE.parents[2] / "examples" / "plugins"


async def demo_state(platform: Services) -> str:
    """What the platform database holds: "empty" (no tenant at all), "loaded" (the demo tenant
    with every demo app published), "partial" (a load that did not finish) or "other" (tenants,
    none of them the demo's)."""
    tenant = await platform.tenants.find(TENANT)
    if tenant is None:
        return "other" if await platform.tenants.list() else "empty"
    for slug in APPS:
        try:
            if await platform.metadata.active_version(tenant, slug) is None:
                return "partial"
        except NotFound:
            return "partial"
    return "loaded"


async def load_demo(
    platform: Services,
    principal: Principal,
    *,
    plugins: bool = True,
    compile: bool = False,
    seed: bool = True,
    progress: Callable[[str], None] | None = None,
    http: ASGIApp | None = None,
) -> list[str]:
    """Create the demo tenant and its apps (idempotent); publish when a draft changed.

    With `plugins`, the example plugins are built (cached by source hash in the user cache
    dir or `PLINTH_CACHE_DIR`), published and installed with their grants; with `compile`, also
    compiled for this machine so the first call is fast; with `seed`, the first load also
    creates the demo's data and its customer (`plinth.demo.seed`) through `http`, the platform's
    ASGI app. `progress` hears of slow steps.
    """
    lines: list[str] = []
    tenant = await platform.tenants.find(TENANT)
    if tenant is None:
        tenant = await platform.tenants.create(
            TENANT,
            "Acme Insurance",
            settings={"countries": ["DE", "FR", "ES", "BR", "US"]},
        )
        lines.append(f"tenant {TENANT} created")
    if "compliance" not in tenant.settings:
        await platform.compliance.set_profile(tenant, PROFILE, principal.audit_name())
        tenant = await platform.tenants.get(TENANT)
        lines.append(f"compliance profile: {', '.join(PROFILE['countries'])}")
    from plinth.demo.users import ensure_users

    lines += await ensure_users(platform, tenant, principal)
    # Plugins first: publishing checks the workflow's plugin calls and the pages' plugin
    # elements against what is installed.
    if plugins:
        for name, grant in PLUGINS.items():
            lines.append(await install_plugin(platform, principal, name, grant, progress))
            if compile and (EXAMPLES / name).is_dir():
                v = await platform.plugins.version(name)
                if progress is not None and not platform.plugins.is_compiled(v.sha256):
                    progress(f"compiling plugin {name} for this machine (once; ~10 s)…")
                await platform.plugins.compile(name, v.version)
    for slug in APPS:
        folder = HERE / slug
        app, draft = await platform.files.import_folder(
            tenant, folder, slug=slug, by=principal.audit_name()
        )
        outcome = await platform.metadata.publish(
            tenant, slug, principal, message="demo app loaded"
        )
        state = (
            f"published version {outcome.version.number}"
            if outcome.created
            else f"version {outcome.version.number} up to date"
        )
        docs = sum(len(v) for v in draft.definition.values())
        lines.append(
            f"app {TENANT}/{app.slug}: {docs} documents, {state} "
            f"({definitions.content_hash(draft.definition)[:12]})"
        )
    from plinth.demo.connectors import ensure_connectors

    lines += await ensure_connectors(platform, tenant, APPS, principal)
    from plinth.demo.seed import seed_demo

    if seed:  # once: the customer, policies, claims worked by the demo's people
        if http is None:
            raise TypeError("seeding the demo drives the HTTP API: pass the app as `http`")
        lines += await seed_demo(platform, TENANT, principal, http)
    return lines


async def install_plugin(
    platform: Services,
    principal: Principal,
    name: str,
    grant: list[str],
    progress: Callable[[str], None] | None = None,
) -> str:
    """Build (cached), publish and install one example plugin in the demo tenant."""
    from plinth.extensions import build
    from plinth.extensions import manifest as manifest_mod
    from plinth.extensions.package import Package, read_modules

    source = EXAMPLES / name
    if not (source / build.MANIFEST).is_file():
        return f"plugin {name} skipped: its sources ({source}) are not here"
    manifest_text = (source / build.MANIFEST).read_text()
    manifest = manifest_mod.parse(manifest_text)
    service = platform.plugins
    try:
        await service.version(manifest.name, manifest.version)
    except NotFound:
        if progress is not None and not build.is_built(source):
            progress(f"building plugin {name} with componentize-py (once; ~10 s)…")
        wasm = await asyncio.to_thread(build.build, source)
        data = await asyncio.to_thread(wasm.read_bytes)
        modules = await asyncio.to_thread(read_modules, manifest, source)
        await service.publish_package(
            Package(manifest_text, manifest, data, modules=modules), principal
        )
    points = ", ".join(dict.fromkeys(p.kind for p in manifest.points))
    try:
        inst = await service.installation(TENANT, manifest.name)
    except NotFound:
        await service.install(
            TENANT, manifest.name, principal, version=manifest.version, capabilities=grant
        )
        return f"plugin {manifest.name} {manifest.version} installed ({points})"
    if inst.version != manifest.version:
        await service.upgrade(
            TENANT, manifest.name, principal, version=manifest.version, capabilities=grant
        )
        return f"plugin {manifest.name} upgraded {inst.version} → {manifest.version} ({points})"
    return f"plugin {manifest.name} {manifest.version} installed ({points}), up to date"
