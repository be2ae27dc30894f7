"""The composition root: one object holding every layer's services for one process."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from plinth.db import Database
from plinth.designer.service import DesignerService
from plinth.events import EventBus
from plinth.governance.access import Authorizer, RoleAuthorizer
from plinth.governance.tokens import IssuedToken, TokenService
from plinth.metadata.service import AppFiles, MetadataService
from plinth.settings import Settings
from plinth.tenancy.service import TenantService

log = logging.getLogger("plinth")


class Platform:
    """Settings, storage and the services of each layer, wired once at start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.resolved_database_url)
        self.events = EventBus()
        self.tenants = TenantService(self.db)
        self.tokens = TokenService(self.db)
        self.authorizer: Authorizer = RoleAuthorizer()
        self.metadata = MetadataService(self.db, self.events)
        self.files = AppFiles(self.metadata)
        self.admin_token: IssuedToken | None = None
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self.designer = DesignerService(self.db, self.events, self.metadata, settings.redis_url)
        self.on_stop(self.designer.stop)

    async def start(self) -> None:
        """Migrate the database and make sure a platform admin token exists."""
        await self.db.migrate()
        self.admin_token = await self.tokens.ensure_admin(self.settings.admin_token)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._on_stop.append(hook)

    async def stop(self) -> None:
        for hook in reversed(self._on_stop):
            try:
                await hook()
            except Exception:
                log.exception("stop hook failed")
        await self.db.dispose()
