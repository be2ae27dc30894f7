"""The plugin service (`platform.plugins`): the registry, installations, calls and metering
of `registry.py`, `installations.py`, `calls.py` and `metering.py`, with the state they share."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from plinth.events import Event
from plinth.extensions import build
from plinth.extensions.calls import Calls
from plinth.extensions.executor import PluginExecutor, default_capacity
from plinth.extensions.fuel import FuelBudget
from plinth.extensions.installations import HOOKS_TTL
from plinth.extensions.models import (
    DEFAULT_FUEL_PER_MINUTE,
    Installation,
    PluginVersion,
)
from plinth.extensions.ports import Services
from plinth.jsonschema import Validator
from plinth.recent import Recent


class PluginService(Calls):
    """What other layers call: publish, install, grant, and call plugins (`platform.plugins`)."""

    def __init__(self, platform: Services) -> None:
        self.platform = platform
        self.db = platform.db
        data_dir = Path(platform.settings.data_dir)
        self.blob_dir = data_dir / "plugins"
        # Compiled artifacts are keyed by the component's hash and the wasmtime version, so
        # every data dir on the machine can share them (compiling takes seconds).
        cache = (
            getattr(platform.settings, "plugin_cache_dir", None)
            or build.default_cache_dir() / "compiled"
        )
        settings = platform.settings
        workers = settings.plugin_workers or default_capacity()
        self.executor = PluginExecutor(
            Path(cache),
            measure_memory=bool(settings.plugin_measure_memory),
            capacity=workers,
            per_tenant=settings.plugin_tenant_workers or max(1, workers // 2),
        )
        self.cache_dir = Path(cache)
        self.fuel_per_minute = DEFAULT_FUEL_PER_MINUTE
        # The per-tenant fuel budget lives in the integration layer's rate limiter (`limits`):
        # in process memory when embedded, in Redis when scaled out, so nodes share it.
        self.budget = FuelBudget(platform)
        # Which installed plugins hook which entities, per tenant: [(name, manifest)]. Dropped
        # here on install/upgrade/uninstall; another node's change shows within the TTL. When
        # it runs out, the requests in flight wait for one read rather than each send theirs.
        self._hook_cache: Recent[str, list[tuple[str, Any]]] = Recent(HOOKS_TTL)
        # The installations calls run under, per tenant: name -> (expires, installation). Dropped
        # on every change here and on another node's install/upgrade/grant/uninstall event;
        # another node's limits change shows within HOOKS_TTL.
        self._installs: dict[str, dict[str, tuple[float, Installation]]] = {}
        platform.events.subscribe("plugin.*", self._on_plugin_event, cluster=True)
        # The UI elements each tenant's portal may load (every page load asks), the same way.
        self._ui_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._ui_bodies: dict[str, bytes] = {}  # module bodies by hash (immutable; ≤ 512 KB)
        # Published versions are immutable, so a parsed one can be kept for the process.
        self._versions: dict[tuple[str, str], PluginVersion] = {}
        # Actions' compiled schemas by (plugin, version, action, "input"|"output").
        self._validators: dict[tuple[str, str, str, str], Validator] = {}
        # Metering rows and `plugin.called` events waiting for the next batch (see `_meter`).
        self._metered: list[tuple[dict[str, Any], Event]] = []
        self._metering: asyncio.Task[None] | None = None
        self._metering_due = asyncio.Event()  # write now: a batch is full, or a reader waits
        platform.on_stop(self.stop)

    async def stop(self) -> None:
        await self.flush_metering()
        await self.executor.stop()
