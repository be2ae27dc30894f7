"""The demo apps' connectors: their vault secrets, and one summary line each.

The claims app declares its connectors in its folder (connectors/*.yaml); the secrets they
name live in the tenant's vault and are made here, random, once. The garage_estimates signing
secret is shown once (a partner garage needs it to sign); claim_events and its stand-in
subscriber event_inbox share theirs, which nobody needs to see.
"""

from __future__ import annotations

import secrets
from typing import Any

from plinth.governance.principal import Principal

SHOWN = {"garage_estimates_signing"}  # secrets printed when made (a partner needs them)


async def ensure_connectors(
    platform: Any, tenant: Any, apps: list[str], principal: Principal
) -> list[str]:
    """Make the vault secrets the apps' connectors name; a line per connector."""
    have = {s.name for s in await platform.vault.list(tenant.id)}
    made: dict[str, str] = {}
    lines: list[str] = []
    for slug in apps:
        documents = await platform.connectors.connectors_of(tenant, slug)
        workflows = (await platform.metadata.active_version(tenant, slug)).definition.get(
            "workflows", {}
        )
        for name, doc in documents.items():
            ref = (doc.get("secret") or {}).get("secret")
            if ref and ref not in have:
                made[ref] = secrets.token_urlsafe(24)
                await platform.vault.put(tenant.id, ref, made[ref], by=principal.audit_name())
                have.add(ref)
            # A URL that starts with / is this server, wherever it listens: shown resolved.
            shown = {
                key: platform.connectors.resolve(doc[key])
                for key in ("base_url", "url")
                if isinstance(doc.get(key), str)
            }
            lines.append(
                _line(
                    tenant.slug,
                    slug,
                    name,
                    {**doc, **shown},
                    workflows,
                    made.get(ref) if ref in SHOWN else None,
                )
            )
    return lines


def _line(
    tenant: str,
    app: str,
    name: str,
    doc: dict[str, Any],
    workflows: dict[str, Any],
    secret: str | None,
) -> str:
    kind = doc["kind"]
    if kind == "http":
        return (
            f"connector {name} (http: {', '.join(sorted(doc.get('operations', {})))}) "
            f"→ {doc['base_url']}"
        )
    if kind == "webhook_out":
        return (
            f"connector {name} (webhook_out: {', '.join(doc.get('events', ['record.*']))})"
            f" → {doc['url']}"
        )
    if kind == "webhook_in":
        starts = [
            w
            for w, d in workflows.items()
            if any(
                s.get("type") == "webhook" and s.get("connector") == name
                for s in d.get("start", [])
            )
        ]
        line = f"connector {name} (webhook_in) at POST /api/t/{tenant}/apps/{app}/hooks/{name}" + (
            f", starts {', '.join(starts)}" if starts else ""
        )
        if secret:
            line += f", signing secret: {secret}"
        return line
    return f"connector {name} ({kind})"
