"""What the extensions layer uses of the other layers (server/platform.py provides it).

A plugin's host functions reach records and connectors, and the service authorizes, audits,
meters fuel and finds tenants; those services live in other layers, several of them built
after the plugin service. So the plugin service takes this port and looks each service up
when a call needs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from plinth.db import Database
from plinth.events import EventBus
from plinth.governance.access import Authorizer
from plinth.governance.service import Governance
from plinth.integration.quotas import Quotas
from plinth.integration.service import ConnectorService
from plinth.runtime.service import RecordService
from plinth.settings import Settings
from plinth.tenancy.service import TenantService


class Services(Protocol):
    """The platform as the plugin service sees it."""

    settings: Settings
    db: Database
    events: EventBus
    authorizer: Authorizer
    governance: Governance  # the audit ledger (`record`)
    tenants: TenantService
    quotas: Quotas  # the fuel budget lives in the rate limiter
    connectors: ConnectorService  # plugins' HTTP goes through the integration layer
    records: RecordService  # plugins' record access, with the caller's permissions

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None: ...
