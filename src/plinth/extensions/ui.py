"""Plugin UI components on pages: the publish step that checks `plugin:<name>/<tag>` nodes.

A page may use a plugin's custom element when the tenant has that plugin installed with the
`ui` capability approved and the installed version declares the element; its props are checked
against the element's props JSON Schema (the manifest's `[components.<tag>] props`), with paths.
Bindings (`{{ }}`) are checked by the pages layer, so a bound prop is not held to the schema.

A plugin that is not installed at all is a warning, not a refusal: an app folder moves between
tenants (and `plinth demo --no-plugins` publishes without them), and the portal shows a
"not installed" placeholder in its place until an admin installs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from plinth.errors import Fault, ValidationFailed
from plinth.extensions import store
from plinth.extensions.models import PluginVersion
from plinth.jsonschema import compile_schema, faults
from plinth.metadata.publish import PublishContext, StepResult
from plinth.pages.components import PLUGIN_KIND


def _trees(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for section in ("pages", "components"):
        for name, doc in (definition.get(section) or {}).items():
            if isinstance(doc, dict) and isinstance(doc.get("components"), dict):
                found.append((f"{section}.{name}.components", doc["components"]))
    return found


def _unbound(props: dict[str, Any]) -> dict[str, Any]:
    """Props without `{{ }}` bindings (their type is only known at run time)."""
    return {k: v for k, v in props.items() if not (isinstance(v, str) and "{{" in v)}


def check_plugin_nodes(
    definition: dict[str, Any], available: dict[str, dict[str, Any]], installed: dict[str, bool]
) -> tuple[list[Fault], list[Fault]]:
    """(faults, warnings) of every plugin component node; `available` maps kind -> props
    schema, `installed` plugin name -> whether its grant approves `ui`."""
    found: list[Fault] = []
    warnings: list[Fault] = []
    for base, tree in _trees(definition):
        for cid, node in tree.items():
            kind = node.get("kind") if isinstance(node, dict) else None
            if not isinstance(kind, str) or not PLUGIN_KIND.match(kind):
                continue
            path = f"{base}.{cid}"
            plugin, tag = kind.split(":", 1)[1].split("/", 1)
            if plugin not in installed:
                warnings.append(
                    Fault(
                        f"{path}.kind",
                        f"plugin {plugin!r} is not installed in "
                        f"this tenant; the portal shows a placeholder for <{tag}> "
                        "until it is installed with 'ui' approved",
                        "plugin_not_installed",
                    )
                )
                continue
            if not installed[plugin]:
                found.append(
                    Fault(
                        f"{path}.kind",
                        f"plugin {plugin!r} is installed without "
                        "the 'ui' capability; approve 'ui' in its grant to use its "
                        "elements on pages",
                        "not_granted",
                    )
                )
                continue
            if kind not in available:
                found.append(
                    Fault(
                        f"{path}.kind",
                        f"the installed version of {plugin!r} provides no element <{tag}>",
                        "unknown_component",
                    )
                )
                continue
            props = node.get("props") or {}
            schema = dict(available[kind] or {"type": "object"})
            bound = set(props) - set(_unbound(props))
            if bound and isinstance(schema.get("required"), list):
                schema["required"] = [r for r in schema["required"] if r not in bound]
            found += faults(compile_schema(schema), _unbound(props), f"{path}.props")
    return found, warnings


class PluginComponentsStep:
    """Refuse a publish whose pages use plugin elements the tenant lacks or misconfigures."""

    name = "plugin_components"

    def __init__(self, version_of: Callable[[Any], PluginVersion]) -> None:
        self.version_of = version_of  # a stored plugin version row, read

    async def run(self, ctx: PublishContext, result: StepResult) -> None:
        uses = any(
            isinstance(n, dict) and PLUGIN_KIND.match(str(n.get("kind", "")))
            for _, tree in _trees(ctx.definition)
            for n in tree.values()
        )
        if ctx.reason == "rollback" or not uses:
            result.status = "skipped"
            return
        available: dict[str, dict[str, Any]] = {}
        installed: dict[str, bool] = {}
        # Read in the publish's own transaction (SQLite has one writer).
        it, vt = store.plugin_installs, store.plugin_versions
        rows = (
            await ctx.conn.execute(
                sa.select(vt)
                .join(it, sa.and_(it.c.name == vt.c.name, it.c.version == vt.c.version))
                .where(it.c.tenant_id == ctx.tenant.id)
                .add_columns(it.c.capabilities.label("granted"))
            )
        ).all()
        for row in rows:
            installed[row.name] = "ui" in (row.granted or [])
            if not installed[row.name]:
                continue
            v = self.version_of(row)
            for spec in v.manifest.components():
                available[f"plugin:{v.name}/{spec.name}"] = spec.input_schema or {}
        found, warnings = check_plugin_nodes(ctx.definition, available, installed)
        if found:
            raise ValidationFailed.of(found, "app definition")
        for w in warnings:
            result.warn(w.path, w.message, w.code)
