"""Where a tenant's records live: isolated by construction, in the tenant's home region.

PostgreSQL: one schema per tenant in the region's database. SQLite: one database file per
tenant, under `settings.data_dir/tenants/` for the `default` region (the platform's) and next
to the region's own file for the others, so a query can only ever reach the tenant whose file
it opened. The home region is the first region the tenant's compliance profile allows
(`tenancy.Regions.home`); without regions attached every tenant lives in `default`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from plinth.db import Database
from plinth.tenancy.models import Tenant

DEFAULT = "default"


class TenantStorage:
    """The database and schema of each tenant's data."""

    def __init__(self, platform_db: Database, data_dir: Path) -> None:
        self.platform_db = platform_db
        self.data_dir = data_dir
        self.regions: Any = None  # tenancy.Regions, attached by the platform
        self._files: dict[tuple[str, str], Database] = {}

    def home(self, tenant: Tenant) -> str:
        """The name of the region holding this tenant's data."""
        if self.regions is None or len(self.regions.regions) == 1:
            return DEFAULT  # only the platform's region is configured (the common case)
        return str(self.regions.home(tenant).name)

    def _region_db(self, region: str) -> Database:
        return self.platform_db if region == DEFAULT else self.regions.database(region)

    def shares_platform_db(self, tenant: Tenant) -> bool:
        """Whether the tenant's data is in the platform database itself (PostgreSQL
        `default`): migrations then run on the publish's own transaction."""
        return self.home(tenant) == DEFAULT and not self.platform_db.is_sqlite

    def schema(self, tenant: Tenant) -> str | None:
        return None if self._region_db(self.home(tenant)).is_sqlite else f"t_{tenant.id}"

    def database(self, tenant: Tenant) -> Database:
        region = self.home(tenant)
        db = self._region_db(region)
        if not db.is_sqlite:
            return db
        found = self._files.get((region, tenant.id))
        if found is None:
            if region == DEFAULT:
                folder = Path(self.data_dir) / "tenants"
            else:  # beside the region's file: <region>.db -> <region>-tenants/<id>.db
                region_file = Path(str(db.engine.url.database or f"{region}.db"))
                folder = region_file.parent / f"{region_file.stem}-tenants"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{tenant.id}.db"
            found = self._files[(region, tenant.id)] = Database(
                f"sqlite+aiosqlite:///{path.as_posix()}"
            )
            _secure_delete(found)
        return found

    def databases(self, tenants: list[Tenant] | None = None) -> list[Database]:
        """The databases holding these tenants' records (None: those opened so far)."""
        found: dict[int, Database] = {}
        if tenants is None:
            if not self.platform_db.is_sqlite:
                found[id(self.platform_db)] = self.platform_db
            if self.regions is not None:
                for name in self.regions.regions:
                    db = self._region_db(name)
                    if not db.is_sqlite:
                        found[id(db)] = db
            found.update((id(db), db) for db in self._files.values())
        for tenant in tenants or []:
            db = self.database(tenant)
            found[id(db)] = db
        return list(found.values())

    async def close(self) -> None:
        for db in self._files.values():
            await db.dispose()
        self._files.clear()


def _secure_delete(db: Database) -> None:
    """Deleted and overwritten values are zeroed in the file, not left in free pages: an
    erased subject's data must not be recoverable from the tenant's file."""

    @event.listens_for(db.engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()
