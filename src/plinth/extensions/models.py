"""Plugin types: manifests, installations, limits, and the typed errors of guest failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from plinth.errors import PlinthError

# `ui` is no host interface: it is the tenant admin's approval that the plugin's custom
# elements (its `component` extension points) may run in the tenant's portal pages.
CAPABILITIES = ("log", "records.read", "records.write", "http", "kv", "clock", "ui")
POINTS = ("action", "before-write", "component")
MAX_LOG_LINES = 200  # a call's log lines kept; a chatty plugin cannot flood the log


@dataclass(frozen=True)
class Limits:
    """What one call may use: fuel (instructions), linear memory, wall time, output size."""

    fuel: int
    memory_bytes: int
    timeout_ms: int
    output_bytes: int

    def as_dict(self) -> dict[str, int]:
        return {
            "fuel": self.fuel,
            "memory_bytes": self.memory_bytes,
            "timeout_ms": self.timeout_ms,
            "output_bytes": self.output_bytes,
        }


# Per extension point defaults; a tenant may override each within PLATFORM_MAX.
DEFAULT_LIMITS: dict[str, Limits] = {
    "action": Limits(
        fuel=2_000_000_000, memory_bytes=128 << 20, timeout_ms=5_000, output_bytes=1 << 20
    ),
    # before-write runs inside a user's save, so it gets less.
    "before-write": Limits(
        fuel=500_000_000, memory_bytes=96 << 20, timeout_ms=1_000, output_bytes=256 << 10
    ),
}
PLATFORM_MAX = Limits(
    fuel=20_000_000_000, memory_bytes=512 << 20, timeout_ms=30_000, output_bytes=16 << 20
)
# Fuel a tenant may burn per minute across all its plugin calls.
DEFAULT_FUEL_PER_MINUTE = 50_000_000_000


@dataclass(frozen=True)
class PointSpec:
    """One extension point a plugin provides: an action name, or a before-write hook."""

    kind: str  # "action" | "before-write" | "component"
    name: str  # the action name; "app.entity" (or "*") for hooks; the tag for components
    input_schema: dict[str, Any] | None = None  # a component's props schema
    output_schema: dict[str, Any] | None = None
    module: str | None = None  # a component's ES module, a path inside the package
    description: str = ""


@dataclass(frozen=True)
class Manifest:
    """`plinth-plugin.toml`, validated."""

    name: str
    version: str
    publisher: str
    description: str
    capabilities: tuple[str, ...]
    http_hosts: tuple[str, ...]
    points: tuple[PointSpec, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    # The plugin keeps nothing between calls in its memory, so a worker may keep an instance
    # warm and call it again (for the same tenant and version only) instead of instantiating.
    stateless: bool = False

    def action(self, name: str) -> PointSpec | None:
        return next((p for p in self.points if p.kind == "action" and p.name == name), None)

    def components(self) -> list[PointSpec]:
        return [p for p in self.points if p.kind == "component"]

    def component(self, tag: str) -> PointSpec | None:
        return next((p for p in self.components() if p.name == tag), None)

    def hooks_for(self, app: str, entity: str) -> bool:
        targets = {f"{app}.{entity}", f"{app}.*", "*"}
        return any(p.kind == "before-write" and p.name in targets for p in self.points)


@dataclass(frozen=True)
class PluginVersion:
    name: str
    version: str
    publisher: str
    sha256: str
    size: int
    manifest: Manifest
    signed: bool
    published_at: datetime
    # The ES modules of its components: package path -> {"sha256", "size"}.
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)

    def module_sha(self, tag: str) -> str | None:
        """The SHA-256 of the module defining component `tag` (None if no such component)."""
        spec = self.manifest.component(tag)
        entry = self.modules.get(spec.module or "") if spec is not None else None
        return entry["sha256"] if entry else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "publisher": self.publisher,
            "sha256": self.sha256,
            "size": self.size,
            "signed": self.signed,
            "modules": self.modules,
            "description": self.manifest.description,
            "capabilities": list(self.manifest.capabilities),
            "http_hosts": list(self.manifest.http_hosts),
            "points": [{"kind": p.kind, "name": p.name} for p in self.manifest.points],
            "published_at": self.published_at.isoformat(),
        }


@dataclass(frozen=True)
class Installation:
    tenant_id: str
    name: str
    version: str
    pinned: bool
    capabilities: tuple[str, ...]
    http_hosts: tuple[str, ...]
    limits: dict[str, dict[str, int]]
    installed_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "pinned": self.pinned,
            "grant": {"capabilities": list(self.capabilities), "http_hosts": list(self.http_hosts)},
            "limits": self.limits,
            "installed_at": self.installed_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


# Guest failures: the plugin (not the caller's request) failed, so 502 unless said otherwise.
class PluginFailed(PlinthError):
    code: ClassVar[str] = "plugin_failed"
    status: ClassVar[int] = 502
    title: ClassVar[str] = "Plugin failed"


class PluginTrapped(PluginFailed):
    code = "plugin_trap"
    title = "Plugin trapped"


class PluginOutOfFuel(PluginFailed):
    code = "plugin_out_of_fuel"
    title = "Plugin ran out of fuel"


class PluginOutOfMemory(PluginFailed):
    code = "plugin_out_of_memory"
    title = "Plugin ran out of memory"


class PluginDeadline(PluginFailed):
    code = "plugin_deadline"
    status = 504
    title = "Plugin exceeded its time limit"


class PluginInvalidOutput(PluginFailed):
    code = "plugin_invalid_output"
    title = "Plugin returned invalid output"


class PluginOutputTooLarge(PluginFailed):
    code = "plugin_output_too_large"
    title = "Plugin output too large"


class PluginNestedTooDeep(PluginFailed):
    """Plugins calling plugins (an action writing a record whose before-write hook writes
    again, ...) deeper than MAX_NESTING: refused, so a loop cannot pin worker threads."""

    code = "plugin_nested_too_deep"
    title = "Plugins nested too deeply"


class PluginError(PluginFailed):
    """The guest raised an exception of its own (reported by the SDK)."""

    code = "plugin_error"
    title = "Plugin raised an error"


class PluginInvalid(PluginFailed):
    """The package's component does not compile, link or export what its manifest declares:
    refused at publish with wasmtime's reason (never a failure of the first call)."""

    code = "plugin_invalid"
    status = 422
    title = "Plugin component invalid"


class PluginBusy(PlinthError):
    """No worker could start the call before its deadline: the platform's plugin workers are
    all busy (503), or this tenant already runs its share of them (429). Retry-After says when
    to try again; the call never ran."""

    code = "plugin_busy"
    status = 503
    title = "Plugin workers busy"


class PluginTenantBusy(PluginBusy):
    code = "plugin_tenant_busy"
    status = 429
    title = "Too many plugin calls for this tenant"


class CapabilityUnavailable(PlinthError):
    code = "capability_unavailable"
    status = 503
    title = "Capability unavailable"
