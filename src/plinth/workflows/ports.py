"""What the workflows layer uses of the other layers: small ports, provided by the platform.

A workflow node writes records (runtime), calls a plugin's action (extensions), calls a
connector (integration) or runs retention (compliance). The engine and the nodes see these
ports, never the platform itself; `server/platform.py` passes the real services in.
"""

from __future__ import annotations

from typing import Any, Protocol

from plinth.db import Database
from plinth.events import EventBus
from plinth.governance.access import Authorizer
from plinth.governance.principal import Principal
from plinth.metadata.service import MetadataService
from plinth.tenancy.models import Tenant
from plinth.tenancy.service import TenantService


class RecordWriter(Protocol):
    """The records a workflow reads and writes, with the acting principal's permissions."""

    async def create(
        self,
        tenant: Tenant,
        app_slug: str,
        entity: str,
        data: dict[str, Any] | list[dict[str, Any]],
        principal: Principal,
        *,
        record_id: str | None = None,
    ) -> dict[str, Any] | list[dict[str, Any]]: ...

    async def update(
        self,
        tenant: Tenant,
        app_slug: str,
        entity: str,
        record_id: str,
        changes: dict[str, Any],
        principal: Principal,
    ) -> dict[str, Any]: ...

    async def get(
        self, tenant: Tenant, app_slug: str, entity: str, record_id: str, principal: Principal
    ) -> dict[str, Any]: ...

    async def copy_of_entity(
        self, tenant: Tenant, app_slug: str, entity: str, record: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """What a workflow may keep of a record: sealed and masked as the data inventory says."""
        ...


class ActionRunner(Protocol):
    """Runs an installed plugin's action."""

    async def call_action(
        self,
        tenant: Tenant | str,
        plugin_name: str,
        action_name: str,
        input: dict[str, Any],
        principal: Principal,
    ) -> dict[str, Any]: ...


class ConnectorCaller(Protocol):
    """Calls an operation of one of the app's connectors."""

    async def call(
        self,
        tenant: Tenant,
        app_slug: str,
        connector: str,
        operation: str,
        input: dict[str, Any],
        principal: Principal,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]: ...


class RetentionRunner(Protocol):
    """Deletes or anonymises a tenant's expired records (the `retention` node)."""

    async def run_retention(
        self, tenant: Tenant, app: str | None = None, *, by: str | None = None
    ) -> dict[str, Any]: ...


class Services(Protocol):
    """Everything the workflow service, its engine and its nodes use (read-only)."""

    @property
    def db(self) -> Database: ...

    @property
    def events(self) -> EventBus: ...

    @property
    def authorizer(self) -> Authorizer: ...

    @property
    def metadata(self) -> MetadataService: ...

    @property
    def tenants(self) -> TenantService: ...

    @property
    def records(self) -> RecordWriter: ...

    @property
    def plugins(self) -> ActionRunner: ...

    @property
    def connectors(self) -> ConnectorCaller: ...

    @property
    def compliance(self) -> RetentionRunner: ...
