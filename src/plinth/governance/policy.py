"""The Cedar authorizer: platform default policies plus each app's published `policies`.

Tenant isolation and the platform admin are decided before Cedar (no policy text can widen
them). Parsed policy sets are cached per published app version; `row_filter` uses Cedar
partial evaluation with the record unknown and hands the runtime a filter AST.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from plinth.errors import Fault
from plinth.governance.access import PER_ROW, ROLE_ACTIONS, Decision, Resource
from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.governance.residual import DENY_ALL, Filter, Untranslatable, residuals_to_filter

log = logging.getLogger("plinth.governance.policy")

DATA_ACTIONS = ("data.create", "data.read", "data.update", "data.delete")
FIELD_ACTIONS = ("field.read", "field.write")
# Seeing a `masked` field in full (compliance); owners by default, app policies may widen it.
UNMASK_ACTIONS = ("field.unmask",)
# Data-subject rights, retention runs and field-key rotation (governance.compliance).
COMPLIANCE_ACTIONS = {"subject.export", "subject.erase", "compliance.retention", "compliance.keys"}
OWNER_EXTRA = {"audit.read", "user.manage"} | COMPLIANCE_ACTIONS
# Seams later layers call: plugin execution, connector calls, workflow tasks.
SEAM_ACTIONS = {"plugin.execute", "connector.call", "workflow.task"}
META_ACTIONS = tuple(
    sorted(set().union(*ROLE_ACTIONS.values()) - set(DATA_ACTIONS) | OWNER_EXTRA | SEAM_ACTIONS)
)
ALL_ACTIONS = META_ACTIONS + DATA_ACTIONS + FIELD_ACTIONS + UNMASK_ACTIONS
# `username` is what the runtime records as `created_by` (so policies can say "records I
# created"); `subject` is the id of the record a person is the data subject of (a customer's
# own policyholder record), so customer-facing policies can say "records about me".
USER_ATTRS = ("tenant", "country", "department", "email", "name", "subject", "username")
_CEDAR_TYPES = {"integer": "Long", "boolean": "Boolean"}


def _default_policies() -> str:
    """Built-in roles as Cedar: each role is permitted its action list, fields are open."""
    out = []
    for role, actions in ROLE_ACTIONS.items():
        extra = OWNER_EXTRA if role == "owner" else set()
        acts = ", ".join(f'Action::"{a}"' for a in sorted(set(actions) | extra))
        out.append(
            f'@id("default.{role}")\npermit(principal in Role::"{role}", '
            f"action in [{acts}], resource);"
        )
    out.append(
        '@id("default.fields")\npermit(principal, action in '
        '[Action::"field.read", Action::"field.write"], resource);'
    )
    out.append(
        '@id("default.unmask")\npermit(principal in Role::"owner", '
        'action == Action::"field.unmask", resource);'
    )
    return "\n".join(out)


DEFAULT_POLICIES = _default_policies()


def entity_type(name: str) -> str:
    """Cedar entity type of an app entity (`claim` → `claim`)."""
    return name


def cedar_schema(definition: dict[str, Any] | None) -> dict[str, Any]:
    """Cedar JSON schema: users/roles/groups, one resource type per app entity, all actions."""
    opt = {"required": False}
    entity_types: dict[str, Any] = {
        "Role": {},
        "Group": {},
        "User": {
            "memberOfTypes": ["Role", "Group"],
            "shape": {
                "type": "Record",
                "attributes": {a: {"type": "String", **opt} for a in USER_ATTRS},
            },
        },
        "Tenant": {},
        "App": {"shape": {"type": "Record", "attributes": {"tenant": {"type": "String", **opt}}}},
        "Field": {
            "shape": {
                "type": "Record",
                "attributes": {"entity": {"type": "String"}, "name": {"type": "String"}},
            }
        },
    }
    records = []
    for name, ent in ((definition or {}).get("entities") or {}).items():
        attrs = {}
        for fname, spec in (ent.get("fields") or {}).items():
            attrs[fname] = {
                "type": _CEDAR_TYPES.get(spec.get("type", ""), "String"),
                "required": bool(spec.get("required")),
            }
        for sys_name in ("created_by", "updated_by"):
            attrs[sys_name] = {"type": "String", **opt}
        entity_types[entity_type(name)] = {"shape": {"type": "Record", "attributes": attrs}}
        records.append(entity_type(name))
    applies = {"principalTypes": ["User"]}
    actions = {
        a: {"appliesTo": {**applies, "resourceTypes": ["App", "Tenant"]}} for a in META_ACTIONS
    }
    for a in DATA_ACTIONS:
        actions[a] = {"appliesTo": {**applies, "resourceTypes": records or ["App"]}}
    for a in FIELD_ACTIONS + UNMASK_ACTIONS:
        actions[a] = {"appliesTo": {**applies, "resourceTypes": ["Field"]}}
    return {"": {"entityTypes": entity_types, "actions": actions}}


def validate_app_policies(definition: dict[str, Any]) -> list[Fault]:
    """Faults (with paths) for each policy document that does not validate against the app."""
    faults: list[Fault] = []
    schema = json.dumps(cedar_schema(definition))
    for name, doc in (definition.get("policies") or {}).items():
        path = f"policies.{name}.cedar"
        text = doc.get("cedar", "") if isinstance(doc, dict) else ""
        try:
            cedarpy.PolicySet.from_str(text)
        except ValueError as exc:
            faults.append(Fault(path, f"Cedar syntax: {exc}", "cedar_syntax"))
            continue
        result = cedarpy.validate_policies(text, schema)
        for err in result.errors:
            faults.append(Fault(path, f"Cedar validation: {err}", "cedar_invalid"))
    return faults


@dataclass
class CompiledPolicies:
    """A parsed policy set and the human names of its policies (policyN → name)."""

    policies: Any
    names: dict[str, str]
    fields: dict[str, list[str]] = field(default_factory=dict)


def compile_policies(documents: dict[str, str]) -> CompiledPolicies:
    """Concatenate named Cedar documents into one parsed set, remembering who wrote what."""
    names: dict[str, str] = {}
    texts = []
    index = 0
    for doc_name, text in documents.items():
        parsed = json.loads(cedarpy.policies_to_json_str(text)) if text.strip() else {}
        for k, (_pid, est) in enumerate(
            sorted((parsed.get("staticPolicies") or {}).items(), key=lambda kv: int(kv[0][6:]))
        ):
            ann = (est.get("annotations") or {}).get("id")
            names[f"policy{index}"] = ann or f"{doc_name}#{k}"
            index += 1
        texts.append(text)
    return CompiledPolicies(cedarpy.PolicySet.from_str("\n".join(texts)), names)


_ACTION_ENTITIES = [
    {"uid": {"type": "Action", "id": a}, "attrs": {}, "parents": []} for a in ALL_ACTIONS
]


def _cedar_value(value: Any) -> Any:
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)  # Cedar has no floats; decimals compare as whole units
    if isinstance(value, list | tuple | set):
        return [_cedar_value(v) for v in value if v is not None]
    return str(value)


def _attrs(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _cedar_value(v) for k, v in values.items() if v is not None}


class CedarAuthorizer:
    """`decide`, `row_filter` and `field_access` over platform defaults + app policies."""

    def __init__(self) -> None:
        self.defaults = compile_policies({"default": DEFAULT_POLICIES})
        # (tenant_id, app_slug) -> compiled set of that app's active version
        self._apps: dict[tuple[str, str], CompiledPolicies] = {}
        self._field_cache: dict[tuple[Any, ...], tuple[set[str] | None, set[str] | None]] = {}
        self._decisions: dict[tuple[Any, ...], Decision] = {}
        # (action, entity, principal…) -> (the policies it was computed on, row filter)
        self._residuals: dict[tuple[Any, ...], tuple[CompiledPolicies, Any]] = {}

    # -- cache ------------------------------------------------------------------------------

    def install(self, tenant_id: str, app_slug: str, definition: dict[str, Any]) -> None:
        """Cache the compiled policies of an app's (newly) active version."""
        docs = {"default": DEFAULT_POLICIES}
        for name, doc in (definition.get("policies") or {}).items():
            docs[f"app.{name}"] = doc.get("cedar", "")
        compiled = compile_policies(docs)
        compiled.fields = {
            name: list((ent.get("fields") or {}).keys())
            for name, ent in (definition.get("entities") or {}).items()
        }
        self._apps[(tenant_id, app_slug)] = compiled
        self._decisions.clear()  # keys hold id(compiled); never let a recycled id match
        self._field_cache = {
            k: v for k, v in self._field_cache.items() if k[:2] != (tenant_id, app_slug)
        }

    def forget(self, tenant_id: str, app_slug: str) -> None:
        self._apps.pop((tenant_id, app_slug), None)
        self._decisions.clear()

    def _set_for(self, tenant_id: str | None, app_slug: str | None) -> CompiledPolicies:
        if tenant_id and app_slug:
            return self._apps.get((tenant_id, app_slug), self.defaults)
        return self.defaults

    # -- entities ---------------------------------------------------------------------------

    @staticmethod
    def _principal_entities(principal: Principal) -> list[dict[str, Any]]:
        attrs = {k: v for k, v in principal.attrs.items() if k in USER_ATTRS}
        attrs["tenant"] = principal.tenant_id or ""
        attrs.pop("username", None)  # never from stored attributes: only a signed-in user's
        if principal.kind == "user":
            attrs["username"] = principal.audit_name()
        parents = [{"type": "Role", "id": r} for r in sorted(principal.roles)]
        parents += [{"type": "Group", "id": g} for g in principal.attrs.get("groups", ())]
        return [
            {
                "uid": {"type": "User", "id": principal.id},
                "attrs": _attrs(attrs),
                "parents": parents,
            }
        ]

    @staticmethod
    def _resource_entity(resource: Resource) -> dict[str, Any]:
        if resource.kind == "record":
            entity = resource.attrs.get("entity") or resource.id
            record = resource.attrs.get("record") or {}
            rid = str(record.get("id") or resource.id)
            return {
                "uid": {"type": entity_type(entity), "id": rid},
                "attrs": _attrs({k: v for k, v in record.items() if k != "id"}),
                "parents": [],
            }
        if resource.kind == "field":
            return {
                "uid": {"type": "Field", "id": resource.id},
                "attrs": _attrs(
                    {
                        "entity": resource.attrs.get("entity", ""),
                        "name": resource.attrs.get("name", ""),
                    }
                ),
                "parents": [],
            }
        kind = "Tenant" if resource.kind == "tenant" else "App"
        return {
            "uid": {"type": kind, "id": resource.id},
            "attrs": _attrs({"tenant": resource.tenant_id}) if kind == "App" else {},
            "parents": [],
        }

    # -- decisions --------------------------------------------------------------------------

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: dict[str, Any] | None = None,
    ) -> Decision:
        """Allow or deny, naming the deciding policies."""
        if PLATFORM_ADMIN in principal.roles:
            return Decision(True, ("role:platform_admin",), ("platform_admin",))
        if resource.tenant_id is not None and resource.tenant_id != principal.tenant_id:
            return Decision(False, ("tenant-mismatch",), ("tenant_isolation",))
        compiled = self._set_for(resource.tenant_id, resource.attrs.get("app"))
        # Metadata decisions repeat on every request; they depend only on who, what and the
        # policy version, so they are memoised (records carry data and are always evaluated).
        key = None
        if resource.kind != "record" and not context:
            key = (
                id(compiled),
                principal.id,
                principal.roles,
                principal.tenant_id,
                repr(sorted(principal.attrs.items())),
                action,
                resource.kind,
                resource.id,
                resource.tenant_id,
            )
            hit = self._decisions.get(key)
            if hit is not None:
                return hit
        res = self._resource_entity(resource)
        request = {
            "principal": {"type": "User", "id": principal.id},
            "action": {"type": "Action", "id": action},
            "resource": res["uid"],
            "context": _attrs(context or {}),
        }
        result = cedarpy.is_authorized(
            request, compiled.policies, self._principal_entities(principal) + [res]
        )
        ids = tuple(compiled.names.get(p, p) for p in result.diagnostics.reasons)
        allowed = bool(result.allowed)
        if result.diagnostics.errors:
            # Cedar skips a policy that errors (e.g. a forbid reading an attribute the record
            # lacks); skipping a forbid would widen access, so an error fails closed.
            log.warning("policy errors deciding %s: %s", action, result.diagnostics.errors)
            if allowed:
                allowed, ids = False, ("policy-error",)
        decision = Decision(allowed, ids, ids)
        if key is not None:
            if len(self._decisions) > 50_000:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def row_filter(
        self, principal: Principal, action: str, tenant: Any, app_slug: str, entity: str
    ) -> Filter | str | None:
        """Which rows `principal` may `action`: filter AST, None (all), deny-all or "per_row"."""
        tenant_id = getattr(tenant, "id", tenant)
        if PLATFORM_ADMIN in principal.roles:
            return None
        if tenant_id != principal.tenant_id:
            return dict(DENY_ALL)
        compiled = self._set_for(tenant_id, app_slug)
        # The residual depends only on the policies and on who asks (its attributes, roles
        # and groups): computed once per (policy version, principal) and action, not per list.
        key = (
            action,
            entity,
            principal.id,
            principal.roles,
            json.dumps(principal.attrs, sort_keys=True, default=str),
        )
        cached = self._residuals.get(key)
        if cached is not None and cached[0] is compiled:
            return cached[1]
        found = self._row_filter(compiled, principal, action, app_slug, entity)
        if len(self._residuals) > 10_000:
            self._residuals.clear()
        self._residuals[key] = (compiled, found)
        return found

    def _row_filter(
        self,
        compiled: CompiledPolicies,
        principal: Principal,
        action: str,
        app_slug: str,
        entity: str,
    ) -> Filter | str | None:
        # Partial evaluation takes the surface syntax only; ids are JSON-quoted.
        request = {
            "principal": f"User::{json.dumps(principal.id)}",
            "action": f"Action::{json.dumps(action)}",
            "context": {},
        }
        # Partial evaluation treats entities it cannot see as unknown, so action and
        # role/group entities are spelled out (else `action in [...]` stays residual).
        ents = self._principal_entities(principal)
        ents += [{"uid": p, "attrs": {}, "parents": []} for p in ents[0]["parents"]]
        result = cedarpy.is_authorized_partial(request, compiled.policies, ents + _ACTION_ENTITIES)
        decision = str(result.decision)
        if decision.endswith("Allow"):
            return None
        if decision.endswith("Deny"):
            return dict(DENY_ALL)
        try:
            return residuals_to_filter(result.residuals or {}, entity_type(entity))
        except Untranslatable as exc:
            log.warning(
                "row filter for %s on %s.%s falls back to per-row checks: %s",
                action,
                app_slug,
                entity,
                exc,
            )
            return PER_ROW

    def field_access(
        self, principal: Principal, tenant: Any, app_slug: str, entity: str
    ) -> tuple[set[str] | None, set[str] | None]:
        """Fields `principal` may read and write (None: all of them)."""
        tenant_id = getattr(tenant, "id", tenant)
        if PLATFORM_ADMIN in principal.roles:
            return None, None
        key = (
            tenant_id,
            app_slug,
            entity,
            principal.id,
            principal.roles,
            json.dumps(principal.attrs, sort_keys=True, default=str),
        )
        cached = self._field_cache.get(key)
        if cached is not None:
            return cached
        compiled = self._set_for(tenant_id, app_slug)
        names = compiled.fields.get(entity, [])
        out: list[set[str] | None] = []
        for action in FIELD_ACTIONS:
            allowed = {
                name
                for name in names
                if self.decide(
                    principal,
                    action,
                    Resource(
                        "field",
                        f"{entity}.{name}",
                        tenant_id,
                        {"app": app_slug, "entity": entity, "name": name},
                    ),
                ).allowed
            }
            out.append(None if len(allowed) == len(names) else allowed)
        answer = (out[0], out[1])
        if len(self._field_cache) > 10_000:
            self._field_cache.clear()
        self._field_cache[key] = answer
        return answer
