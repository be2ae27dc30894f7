"""The demo tenant: an insurer processing claims across countries.

`plinth demo` loads it; each layer's capability shows up here (data model, policies,
workflows, plugins, compliance), so the demo always shows what Plinth can do.
"""

from __future__ import annotations

from pathlib import Path

from plinth.governance.principal import Principal
from plinth.metadata import definition as definitions
from plinth.server.platform import Platform

HERE = Path(__file__).parent
TENANT = "acme-insurance"
APPS = ["claims"]
# Where the insurer's policyholders live; the packs follow (GDPR, CCPA/CPRA, LGPD, PCI DSS).
PROFILE = {"countries": ["DE", "FR", "ES", "BR", "US"], "default_country": "DE"}


async def load_demo(platform: Platform, principal: Principal) -> list[str]:
    """Create the demo tenant and its apps (idempotent); publish when a draft changed."""
    lines: list[str] = []
    tenant = await platform.tenants.find(TENANT)
    if tenant is None:
        tenant = await platform.tenants.create(
            TENANT, "Acme Insurance", settings={"countries": ["DE", "FR", "ES", "BR", "US"]},
        )
        lines.append(f"tenant {TENANT} created")
    if "compliance" not in tenant.settings:
        await platform.compliance.set_profile(tenant, PROFILE, principal.audit_name())
        tenant = await platform.tenants.get(TENANT)
        lines.append(f"compliance profile: {', '.join(PROFILE['countries'])}")
    from plinth.demo.users import ensure_users

    lines += await ensure_users(platform, tenant, principal)
    for slug in APPS:
        folder = HERE / slug
        app, draft = await platform.files.import_folder(tenant, folder, slug=slug,
                                                        by=principal.audit_name())
        outcome = await platform.metadata.publish(tenant, slug, principal,
                                                  message="demo app loaded")
        state = (f"published version {outcome.version.number}" if outcome.created
                 else f"version {outcome.version.number} up to date")
        docs = sum(len(v) for v in draft.definition.values())
        lines.append(f"app {TENANT}/{app.slug}: {docs} documents, {state} "
                     f"({definitions.content_hash(draft.definition)[:12]})")
    return lines
