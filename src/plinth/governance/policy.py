"""The Cedar authorizer: platform default policies plus each app's published `policies`.

Tenant isolation and the platform admin are decided before Cedar (no policy text can widen
them). Parsed policy sets are cached per published app version; `row_filter` uses Cedar
partial evaluation with the record unknown and hands the runtime a filter AST.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from plinth.errors import Fault
from plinth.governance.access import PER_ROW, ROLE_ACTIONS, Decision, DenialHook, Resource
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


# What one policy reads of the resource: the actions it applies to (None: every action), the
# record attributes it reads, and whether it looks at which record it is.
_Reads = tuple[frozenset[str] | None, frozenset[str], bool]


@dataclass
class CompiledPolicies:
    """A parsed policy set and the human names of its policies (policyN → name)."""

    policies: Any
    names: dict[str, str]
    fields: dict[str, list[str]] = field(default_factory=dict)
    policy_reads: list[_Reads] = field(default_factory=list)
    serial: int = 0  # unique per compiled set: keys memoised decisions
    _by_action: dict[str, tuple[tuple[str, ...], bool]] = field(default_factory=dict)

    def reads(self, action: str) -> tuple[tuple[str, ...], bool]:
        """Record attributes the policies applying to `action` read (`resource.x`, `resource
        has x`), and whether one looks at the record itself (`resource == …`, `in`, or
        `resource` as a value): all a record decision for `action` can depend on."""
        known = self._by_action.get(action)
        if known is None:
            attrs: set[str] = set()
            whole = False
            for actions, read, identity in self.policy_reads:
                if actions is None or action in actions:
                    attrs |= read
                    whole = whole or identity
            known = self._by_action[action] = (tuple(sorted(attrs)), whole)
        return known


_RESOURCE = {"Var": "resource"}


def _resource_reads(node: Any, attrs: set[str]) -> bool:
    """Collect the attributes `node` reads off `resource`; True if it uses the record whole."""
    if isinstance(node, list):
        return any([_resource_reads(n, attrs) for n in node])
    if not isinstance(node, dict):
        return False
    if node == _RESOURCE:
        return True
    whole = False
    for op, arg in node.items():
        if op in (".", "has") and isinstance(arg, dict) and arg.get("left") == _RESOURCE:
            attrs.add(str(arg.get("attr")))
            continue
        whole = _resource_reads(arg, attrs) or whole
    return whole


def _policy_reads(est: dict[str, Any]) -> _Reads:
    """What one policy (Cedar's JSON form) reads of the resource, for which actions."""
    scope = est.get("action") or {}
    actions: frozenset[str] | None = None
    if scope.get("op") in ("==", "in"):  # actions have no parents: `in` is membership
        listed = scope.get("entities") or [scope.get("entity") or {}]
        actions = frozenset(str(e.get("id")) for e in listed)
    attrs: set[str] = set()
    res = est.get("resource") or {}
    whole = res.get("op") not in ("All", "is") or "in" in res
    for cond in est.get("conditions") or ():
        whole = _resource_reads(cond.get("body"), attrs) or whole
    return actions, frozenset(attrs), whole


def compile_policies(documents: dict[str, str]) -> CompiledPolicies:
    """Concatenate named Cedar documents into one parsed set, remembering who wrote what."""
    names: dict[str, str] = {}
    texts = []
    index = 0
    reads: list[_Reads] = []
    for doc_name, text in documents.items():
        parsed = json.loads(cedarpy.policies_to_json_str(text)) if text.strip() else {}
        if parsed.get("templates"):  # never installed by Plinth; stay exact if ever
            reads.append((None, frozenset(), True))
        for k, (_pid, est) in enumerate(
            sorted((parsed.get("staticPolicies") or {}).items(), key=lambda kv: int(kv[0][6:]))
        ):
            ann = (est.get("annotations") or {}).get("id")
            names[f"policy{index}"] = ann or f"{doc_name}#{k}"
            reads.append(_policy_reads(est))
            index += 1
        texts.append(text)
    return CompiledPolicies(cedarpy.PolicySet.from_str("\n".join(texts)), names, {}, reads)


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
    """`decide`, `row_filter` and `field_access` over platform defaults + app policies.

    Policy sets are loaded per tenant on first use (`load`), never all at start, and at most
    `bound` apps' sets stay cached, the least recently used dropped first. A decision about an
    app of a tenant whose sets are not loaded fails closed: the caller loads them first (the
    tenant service does so whenever it resolves a tenant)."""

    def __init__(self, bound: int = 10_000, on_denied: DenialHook | None = None) -> None:
        # Called for every denial (governance records it in the audit ledger).
        self.on_denied = on_denied
        self.defaults = compile_policies({"default": DEFAULT_POLICIES})
        self.bound = bound
        # (tenant_id, app_slug) -> compiled set of that app's active version
        self._apps: OrderedDict[tuple[str, str], CompiledPolicies] = OrderedDict()
        # tenants whose every app's set is in `_apps` (an app missing there has none active)
        self._complete: OrderedDict[str, None] = OrderedDict()
        self._changes: dict[str, int] = {}  # installs per tenant: a load racing one retries
        self._unloaded = CompiledPolicies(cedarpy.PolicySet.from_str(""), {})
        self._field_cache: dict[tuple[Any, ...], tuple[set[str] | None, set[str] | None]] = {}
        self._decisions: dict[tuple[Any, ...], Decision] = {}
        # (action, entity, principal…) -> (the policies it was computed on, row filter)
        self._residuals: dict[tuple[Any, ...], tuple[CompiledPolicies, Any]] = {}
        self._serials = itertools.count(1)
        self.defaults.serial = next(self._serials)

    # -- cache ------------------------------------------------------------------------------

    def compile(self, definition: dict[str, Any]) -> CompiledPolicies:
        """The compiled policies of one app version (sharing the parsed defaults when the app
        adds none, which is most apps: nothing per app but its field names)."""
        documents = {
            f"app.{name}": doc.get("cedar", "")
            for name, doc in (definition.get("policies") or {}).items()
        }
        if any(text.strip() for text in documents.values()):
            compiled = compile_policies({"default": DEFAULT_POLICIES, **documents})
        else:
            compiled = CompiledPolicies(
                self.defaults.policies, self.defaults.names, {}, self.defaults.policy_reads
            )
        compiled.fields = {
            name: list((ent.get("fields") or {}).keys())
            for name, ent in (definition.get("entities") or {}).items()
        }
        compiled.serial = next(self._serials)
        return compiled

    def install(self, tenant_id: str, app_slug: str, definition: dict[str, Any]) -> None:
        """Cache the compiled policies of an app's (newly) active version."""
        self._changes[tenant_id] = self._changes.get(tenant_id, 0) + 1
        self._put(tenant_id, app_slug, self.compile(definition))
        self._field_cache = {
            k: v for k, v in self._field_cache.items() if k[:2] != (tenant_id, app_slug)
        }

    def forget(self, tenant_id: str, app_slug: str) -> None:
        self._changes[tenant_id] = self._changes.get(tenant_id, 0) + 1
        self._apps.pop((tenant_id, app_slug), None)

    def loaded(self, tenant_id: str) -> bool:
        """Whether every policy set of the tenant is cached (then touch it as recently used)."""
        if tenant_id not in self._complete:
            return False
        self._complete.move_to_end(tenant_id)
        return True

    def changes(self, tenant_id: str) -> int:
        """A counter of installs for the tenant, taken before reading its sets to `load`."""
        return self._changes.get(tenant_id, 0)

    def load(self, tenant_id: str, definitions: dict[str, dict[str, Any]], since: int) -> bool:
        """Cache the sets of every active app of a tenant, read when `changes` was `since`;
        False (nothing cached) if one was installed meanwhile: read them again."""
        if self._changes.get(tenant_id, 0) != since:
            return False
        for app_slug, definition in definitions.items():
            self._put(tenant_id, app_slug, self.compile(definition))
        for app_slug in definitions:
            if (tenant_id, app_slug) not in self._apps:
                return True  # dropped again at once (a bound below the tenant's apps)
        self._complete[tenant_id] = None
        self._complete.move_to_end(tenant_id)
        while len(self._complete) > self.bound:
            self._complete.popitem(last=False)
        return True

    def _put(self, tenant_id: str, app_slug: str, compiled: CompiledPolicies) -> None:
        key = (tenant_id, app_slug)
        self._apps[key] = compiled
        self._apps.move_to_end(key)
        while len(self._apps) > self.bound:
            (dropped_tenant, _), _ = self._apps.popitem(last=False)
            self._complete.pop(dropped_tenant, None)  # loaded again on its next request

    def stats(self) -> dict[str, int]:
        return {"apps": len(self._apps), "tenants": len(self._complete), "bound": self.bound}

    def _set_for(self, tenant_id: str | None, app_slug: str | None) -> CompiledPolicies:
        if tenant_id and app_slug:
            found = self._apps.get((tenant_id, app_slug))
            if found is not None:
                self._apps.move_to_end((tenant_id, app_slug))
                return found
            if tenant_id in self._complete:
                return self.defaults  # no active version: the platform's defaults
            log.error("policies of tenant %s are not loaded: denying (fails closed)", tenant_id)
            return self._unloaded
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

    @staticmethod
    def _memo_key(
        compiled: CompiledPolicies,
        principal: Principal,
        action: str,
        resource: Resource,
        context: dict[str, Any] | None,
    ) -> tuple[Any, ...] | None:
        """What a decision depends on, or None when it cannot be memoised.

        A decision is a pure function of the policy set (its serial: every compiled set has
        its own, so a new version never meets an old one's memo), everything Cedar sees of
        the principal, the action and the resource — and of a record only the attributes some
        policy reads (and which record it is when a policy looks at that). So reading 100 open
        claims of one country is one Cedar evaluation, not 100.
        """
        attrs = principal.attrs
        who = (
            principal.id,
            principal.kind,
            principal.name,
            principal.roles,
            principal.tenant_id,
            tuple([attrs.get(a) for a in USER_ATTRS]),
            tuple(attrs.get("groups", ())),
        )
        if resource.kind == "record":
            record = resource.attrs.get("record") or {}
            reads, identity = compiled.reads(action)
            what: tuple[Any, ...] = (
                resource.attrs.get("entity") or resource.id,
                tuple([record.get(a) for a in reads]),
                str(record.get("id") or resource.id) if identity else None,
            )
        else:
            what = (resource.kind, resource.id, resource.tenant_id)
        if not compiled.serial:
            return None  # the not-loaded set (serial 0) denies, and is never remembered
        extra = tuple(sorted(context.items())) if context else ()
        key = (compiled.serial, who, action, what, extra)
        try:
            hash(key)
        except TypeError:  # a list-valued attribute: evaluate, as before
            return None
        return key

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
        key = self._memo_key(compiled, principal, action, resource, context)
        if key is not None:
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
            if len(self._decisions) > 100_000:
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
            # A token's principal has no attributes: its key skips the JSON (~5 µs a call).
            json.dumps(principal.attrs, sort_keys=True, default=str) if principal.attrs else "{}",
        )
        cached = self._field_cache.get(key)
        if cached is not None:
            return cached
        compiled = self._set_for(tenant_id, app_slug)
        if compiled is self._unloaded:
            return set(), set()  # fails closed, and is never remembered
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
