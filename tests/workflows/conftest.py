"""Helpers to publish an app with workflows and drive instances through the engine."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from plinth.governance.principal import Principal
from plinth.server import Platform
from plinth.workflows.publish import WorkflowStep
from tests.extensions.conftest import components  # noqa: F401  (plugins built once, cached)
from tests.helpers import CLAIMS

ADMIN = Principal("admin", "token", frozenset({"platform_admin"}), name="admin")


class Harness:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.tenant: Any = None

    async def publish(
        self, workflows: dict[str, Any], app: str = "claims", entities: dict[str, Any] | None = None
    ) -> None:
        m = self.platform.metadata
        if self.tenant is None:
            self.tenant = await self.platform.tenants.create("acme", "Acme")
        try:
            await m.get_app(self.tenant, app)
        except Exception:
            await m.create_app(self.tenant, app)
        definition = copy.deepcopy(CLAIMS) | {"workflows": workflows}
        definition["entities"] |= entities or {}
        await m.put_draft(self.tenant, app, definition)
        await m.publish(self.tenant, app, ADMIN)

    async def start(
        self, workflow: str, input: dict[str, Any] | None = None, who: Principal = ADMIN
    ) -> str:
        inst = await self.platform.workflows.start(
            self.tenant, "claims", workflow, input or {}, who
        )
        await self.drain()
        return str(inst["id"])

    async def drain(self) -> None:
        await self.platform.workflows.engine.drain()

    async def get(self, instance_id: str) -> dict[str, Any]:
        return await self.platform.workflows.instance(self.tenant, instance_id, ADMIN)

    async def tasks(self, who: Principal = ADMIN) -> list[dict[str, Any]]:
        return await self.platform.workflows.inbox(self.tenant, who)


@pytest.fixture
async def wf(platform: Platform) -> Harness:
    return Harness(platform)


def user(wf: Harness, name: str, *roles: str, **attrs: Any) -> Principal:
    """A tenant user; business roles (manager) come on top of the platform role analyst."""
    return Principal(
        name, "user", frozenset({"analyst", *roles}), tenant_id=wf.tenant.id, name=name, attrs=attrs
    )


def stand_in(platform: Platform, plugins: InstalledPlugins) -> None:
    """Put a Python plugin service in the platform's place, for the nodes and for publish."""
    platform.plugins = plugins  # type: ignore[assignment]
    platform.metadata.publishing.register("check", WorkflowStep(plugins.actions))


class InstalledPlugins:
    """Stands in for the plugin service where a test's plugin is Python, not WebAssembly (a
    flaky scorer, a crash-test ledger): it says which plugins, with which actions, the tenant
    has installed, which publish checks like it checks the real service's answer."""

    installed: dict[str, set[str]] = {}

    async def actions(self, tenant: Any) -> dict[str, tuple[str, frozenset[str]]]:
        return {name: ("0.0.0-test", frozenset(acts)) for name, acts in self.installed.items()}
