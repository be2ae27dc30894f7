"""The call path: a plugin call is authorized, checked against its grant and the tenant's
fuel budget, handed to the sandbox's worker pool, settled (fuel charged, call metered) and
its output validated; actions are called by people and workflows, before-write hooks by the
records service."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from plinth.errors import (
    Fault,
    NotFound,
    PlinthError,
    ValidationFailed,
)
from plinth.extensions import host as host_mod
from plinth.extensions import store
from plinth.extensions.fuel import FuelBudget
from plinth.extensions.host import CallHost
from plinth.extensions.installations import Installations
from plinth.extensions.metering import Metering
from plinth.extensions.models import (
    DEFAULT_LIMITS,
    PLATFORM_MAX,
    Installation,
    Limits,
    PluginBusy,
    PluginError,
    PluginFailed,
    PluginInvalidOutput,
    PluginNestedTooDeep,
    PluginVersion,
    PointSpec,
)
from plinth.extensions.sandbox import Outcome, artifact
from plinth.governance.access import Resource, authorize
from plinth.governance.principal import Principal
from plinth.jsonschema import Validator, compile_schema, faults
from plinth.tenancy.models import Tenant

MAX_NESTING = 3  # plugin calls beneath a plugin call (each holds a worker thread meanwhile)
ACTION_PATH = re.compile(r"^/api/t/[^/]+/plugins/[^/]+/actions/[^/]+$")


class Calls(Installations, Metering):
    """Run plugins' actions and hooks in the worker pool, each call metered and charged."""

    cache_dir: Path
    fuel_per_minute: int
    budget: FuelBudget
    _validators: dict[tuple[str, str, str, str], Validator]

    def is_compiled(self, sha256: str) -> bool:
        """Whether a component's compiled artifact is on disk (its first call loads it fast)."""
        return artifact(self.cache_dir, sha256)

    async def warm(self) -> None:
        """Start the worker pool with the installed plugins' components loaded, for a process
        that runs plugin calls from its start (`plinth worker`); elsewhere the pool fills from
        the first call on."""
        it = store.plugin_installs
        async with self.db.read() as conn:
            installed = (await conn.execute(sa.select(it.c.name, it.c.version).distinct())).all()
        if not installed:
            return
        components: list[tuple[str, Path]] = []
        for row in installed:
            try:
                v = await self.version(row.name, row.version)
            except NotFound:
                continue
            blob = self.blob_dir / f"{v.sha256}.wasm"
            if blob.exists():
                components.append((v.sha256, blob))
        await self.executor.warm(components)

    def early_refusal(self, tenant_id: str, method: str, path: str) -> PlinthError | None:
        """The gateway's guard (`integration.gateway.Guard`): an action call of a tenant whose
        plugin queue is full is refused before authentication, routing or its body are looked
        at. Only a 429 `plugin_tenant_busy` (or 503) with Retry-After is revealed to a caller
        not yet authenticated, as the gateway's rate limits do."""
        if method != "POST" or ACTION_PATH.match(path) is None:
            return None
        return self.executor.refusal(tenant_id)

    async def call_action(
        self,
        tenant: Tenant | str,
        plugin_name: str,
        action_name: str,
        input: dict[str, Any],
        principal: Principal,
    ) -> dict[str, Any]:
        """Run a plugin's action for a tenant and return its output (validated)."""
        t = await self._tenant(tenant)
        self.executor.refuse_early(t.id)
        inst, v = await self._prepare(t, plugin_name, principal)
        spec = v.manifest.action(action_name)
        if spec is None:
            raise NotFound(f"{plugin_name} has no action {action_name!r}", path="action")
        if spec.input_schema is not None:
            found = faults(self._validator(v, spec, "input"), input, "input")
            if found:
                raise ValidationFailed.of(found, "action input")
        outcome = await self._run(
            t, inst, v, "action", action_name, principal, (action_name, json.dumps(input))
        )
        output = self._output(outcome, v)
        if not isinstance(output, dict):
            raise PluginInvalidOutput(
                "The action returned something other than an object", path="output"
            )
        if spec.output_schema is not None:
            found = faults(self._validator(v, spec, "output"), output, "output")
            if found:
                raise PluginInvalidOutput(
                    f"The action output does not match its schema: "
                    f"{found[0].path}: {found[0].message}",
                    path=found[0].path,
                    faults=found,
                )
        return output

    def _validator(self, v: PluginVersion, spec: PointSpec, side: str) -> Validator:
        """An action's input or output schema, compiled once per version (they are immutable)."""
        key = (v.name, v.version, spec.name, side)
        found = self._validators.get(key)
        if found is None:
            schema = spec.input_schema if side == "input" else spec.output_schema
            found = self._validators[key] = compile_schema(schema or {})
        return found

    async def before_write(
        self,
        tenant: Tenant | str,
        app_slug: str,
        entity: str,
        record: dict[str, Any],
        principal: Principal,
        *,
        as_part_of_write: bool = False,
    ) -> dict[str, Any]:
        """Run every installed before-write hook on `record`: reject with paths, or amend.

        `as_part_of_write`: called by the records service inside a write the principal was
        allowed to make (`data.create`/`data.update` is the policy decision for the call). The
        tenant admin installed the hook for every write to the entity, so it runs without a
        `plugin.execute` check of the writer's own: a customer filing a claim need not be
        allowed to call plugins. Its grant, limits, fuel budget, metering and audit apply as
        for any call, and its host calls (`records.*`) are checked as the writer.
        """
        t = await self._tenant(tenant)
        current = record
        for name in await self._hooks(t, app_slug, entity):
            self.executor.refuse_early(t.id)
            inst, v = await self._prepare(t, name, principal, authorize_call=not as_part_of_write)
            outcome = await self._run(
                t,
                inst,
                v,
                "before-write",
                f"{app_slug}.{entity}",
                principal,
                (app_slug, entity, json.dumps(current)),
            )
            if outcome.tag == "err":
                err = _guest_error(outcome.payload)
                if err.get("kind") == "rejected":
                    found = [
                        Fault(str(f.get("path", "")), str(f.get("message", "")), "plugin_rejected")
                        for f in err.get("faults", [])
                    ]
                    raise ValidationFailed.of(
                        found or [Fault("", f"Rejected by {inst.name}", "plugin_rejected")],
                        "record",
                    )
            amended = self._output(outcome, v)
            if not isinstance(amended, dict):
                raise PluginInvalidOutput(
                    "A before-write hook must return the record", path="output"
                )
            current = amended
        return current

    async def records_hook(
        self,
        tenant: Tenant,
        app_slug: str,
        entity: str,
        record: dict[str, Any],
        principal: Principal,
    ) -> dict[str, Any]:
        """The records service's before-write hook: free for tenants without hook plugins."""
        if not await self._hooks(tenant, app_slug, entity):
            return record
        return await self.before_write(
            tenant, app_slug, entity, record, principal, as_part_of_write=True
        )

    async def _hooks(self, t: Tenant, app_slug: str, entity: str) -> list[str]:
        """Installed plugins with a before-write hook on app.entity (cached for HOOKS_TTL s)."""

        async def load() -> list[tuple[str, Any]]:
            found = []
            for inst in await self.installations(t):
                v = await self.version(inst.name, inst.version)
                found.append((inst.name, v.manifest))
            return found

        installed = await self._hook_cache.get(t.id, load)
        return [name for name, m in installed if m.hooks_for(app_slug, entity)]

    async def _prepare(
        self, t: Tenant, name: str, principal: Principal, authorize_call: bool = True
    ) -> tuple[Installation, PluginVersion]:
        if authorize_call:
            authorize(
                self.platform.authorizer,
                principal,
                "plugin.execute",
                Resource("plugin", name, tenant_id=t.id),
            )
        inst = await self._installed(t, name)
        v = await self.version(name, inst.version)
        # The grant is re-checked at call time: a version never runs beyond its approval.
        self._check_grant(v, list(inst.capabilities), list(inst.http_hosts), "run")
        await self.budget.check(t.id, self._budget(t))
        return inst, v

    def _budget(self, t: Tenant) -> int:
        return int(t.settings.get("plugin_fuel_per_minute", self.fuel_per_minute))

    def limits_for(self, inst: Installation, point: str) -> Limits:
        base = DEFAULT_LIMITS[point].as_dict()
        top = PLATFORM_MAX.as_dict()
        for key, value in inst.limits.get(point, {}).items():
            if key in base:
                base[key] = min(int(value), top[key])
        return Limits(**base)

    async def _run(
        self,
        t: Tenant,
        inst: Installation,
        v: PluginVersion,
        point: str,
        target: str,
        principal: Principal,
        args: tuple[Any, ...],
    ) -> Outcome:
        limits = self.limits_for(inst, point)
        if host_mod.DEPTH.get() >= MAX_NESTING:
            raise PluginNestedTooDeep(
                f"{inst.name} was called by a plugin call {MAX_NESTING} levels deep (a record "
                "write by a plugin runs before-write hooks); plugins may not nest deeper",
                extra={"limit": MAX_NESTING},
            )
        host = CallHost(self, t, inst, principal, limits)
        started = time.perf_counter()
        busy = False
        outcome: Outcome | None = None
        error: PlinthError | None = None
        cold = False
        try:
            outcome, cold = await self.executor.call(
                t.id,
                v.sha256,
                self.blob_dir / f"{v.sha256}.wasm",
                point,
                args,
                limits,
                host,
                nested=host_mod.DEPTH.get() > 0,
                reuse=v.manifest.stateless,
            )
            if outcome.tag == "err":
                err = _guest_error(outcome.payload)
                if not (point == "before-write" and err.get("kind") == "rejected"):
                    error = _guest_failure(err)
            return outcome
        except PluginBusy:
            busy = True  # never ran: nothing to meter or charge
            raise
        except PluginFailed as exc:
            error = exc
            cold = bool(getattr(exc, "cold", False))
            if not hasattr(exc, "wall_ms"):
                exc.wall_ms = (time.perf_counter() - started) * 1000  # type: ignore[attr-defined]
            raise
        finally:
            if not busy:
                await self._settle(t, v, point, target, principal, limits, outcome, error, cold)
                if error is not None and outcome is not None:
                    raise error

    async def _settle(
        self,
        t: Tenant,
        v: PluginVersion,
        point: str,
        target: str,
        principal: Principal,
        limits: Limits,
        outcome: Outcome | None,
        error: PlinthError | None,
        cold: bool,
    ) -> None:
        """Charge a call's fuel to its tenant and meter it (whatever its outcome)."""
        fuel = (
            outcome.fuel
            if outcome
            else (limits.fuel if error and error.code == "plugin_out_of_fuel" else 0)
        )
        wall = outcome.wall_ms if outcome else float(getattr(error, "wall_ms", 0.0))
        peak = outcome.peak_memory if outcome else getattr(error, "peak_memory", None)
        await self.budget.spend(t.id, self._budget(t), fuel)
        rejected = outcome is not None and outcome.tag == "err" and error is None
        result = error.code if error else ("rejected" if rejected else "ok")
        await self._meter(t, v, point, target, result, fuel, wall, peak, limits, cold, principal)

    def _output(self, outcome: Outcome, v: PluginVersion) -> Any:
        try:
            return json.loads(outcome.payload)
        except ValueError:
            raise PluginInvalidOutput(
                f"{v.name} returned output that is not JSON", path="output"
            ) from None


def _guest_error(payload: str) -> dict[str, Any]:
    try:
        err = json.loads(payload)
    except ValueError:
        return {"kind": "exception", "message": payload[:500]}
    return err if isinstance(err, dict) else {"kind": "exception", "message": str(err)[:500]}


def _guest_failure(err: dict[str, Any]) -> PluginFailed:
    from plinth.extensions.models import PluginOutOfMemory

    message = str(err.get("message", ""))[:500]
    if "MemoryError" in message:
        return PluginOutOfMemory("The plugin ran out of memory", extra={"guest": message})
    if err.get("kind") == "unknown_action":
        return PluginError(message, path="action")
    if err.get("kind") == "capability":
        return PluginError(f"A capability call failed: {message}", path="capability")
    if "RecursionError" in message:
        return PluginError("The plugin recursed too deeply", extra={"guest": message})
    return PluginError(f"The plugin raised: {message}")
