"""Where a tenant's records live: isolated by construction.

PostgreSQL: one schema per tenant in the region database (the platform's engine). SQLite: one
database file per tenant under `settings.data_dir/tenants/`, so a query can only ever reach the
tenant whose file it opened.
"""

from __future__ import annotations

from pathlib import Path

from plinth.db import Database
from plinth.tenancy.models import Tenant


class TenantStorage:
    """The database and schema of each tenant's data."""

    def __init__(self, platform_db: Database, data_dir: Path) -> None:
        self.platform_db = platform_db
        self.data_dir = data_dir
        self._files: dict[str, Database] = {}

    @property
    def shared(self) -> bool:
        """Whether tenant data shares the platform database (PostgreSQL)."""
        return not self.platform_db.is_sqlite

    def schema(self, tenant: Tenant) -> str | None:
        return f"t_{tenant.id}" if self.shared else None

    def database(self, tenant: Tenant) -> Database:
        if self.shared:
            return self.platform_db
        db = self._files.get(tenant.id)
        if db is None:
            path = Path(self.data_dir) / "tenants" / f"{tenant.id}.db"
            db = self._files[tenant.id] = Database(f"sqlite+aiosqlite:///{path.as_posix()}")
        return db

    async def close(self) -> None:
        for db in self._files.values():
            await db.dispose()
        self._files.clear()
