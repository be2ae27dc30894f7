"""What loading the demo uses of the platform (`plinth demo` and the tests pass the platform).

Seeding also drives the HTTP API, as the demo's people would: the caller passes the ASGI app.
"""

from __future__ import annotations

from typing import Protocol

from plinth.extensions.service import PluginService
from plinth.governance.compliance.service import ComplianceService
from plinth.governance.service import Governance
from plinth.governance.tokens import TokenService
from plinth.integration.service import ConnectorService
from plinth.integration.vault import Vault
from plinth.metadata.service import AppFiles, MetadataService
from plinth.tenancy.service import TenantService
from plinth.workflows.service import WorkflowService


class Services(Protocol):
    """The platform as the demo loader sees it (read-only)."""

    @property
    def tenants(self) -> TenantService: ...

    @property
    def tokens(self) -> TokenService: ...

    @property
    def governance(self) -> Governance: ...

    @property
    def metadata(self) -> MetadataService: ...

    @property
    def files(self) -> AppFiles: ...

    @property
    def plugins(self) -> PluginService: ...

    @property
    def compliance(self) -> ComplianceService: ...

    @property
    def connectors(self) -> ConnectorService: ...

    @property
    def vault(self) -> Vault: ...

    @property
    def workflows(self) -> WorkflowService: ...
