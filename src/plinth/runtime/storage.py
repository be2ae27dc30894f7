"""Where a tenant's records live: isolated by construction, in the tenant's home region.

PostgreSQL: one schema per tenant in the region's database, reached through the region's one
shared pool (no connection per tenant). SQLite: one database file per tenant, under
`settings.data_dir/tenants/` for the `default` region (the platform's) and next to the region's
own file for the others, so a query can only ever reach the tenant whose file it opened. The
home region is the first region the tenant's compliance profile allows (`tenancy.Regions.home`);
without regions attached every tenant lives in `default`.

A node may hold thousands of tenants, but an open SQLite file costs three file descriptors
(`.db`, `-wal`, `-shm`) and an aiosqlite thread per connection. So tenant files are opened on
first use into a small pool each (one connection kept while idle, `tenant_pool_size` at most
under load) and closed, least recently used first, when more than `open_bound` are open. A file
in use is never closed under its user: it is closed when its last connection comes back.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.pool import AsyncAdaptedQueuePool

from plinth.db import Database, sqlite_file_engine
from plinth.tenancy.models import Tenant

log = logging.getLogger(__name__)

DEFAULT = "default"
FILES_PER_CONNECTION = 3  # .db, -wal, -shm


def default_open_bound(pool_size: int) -> int:
    """How many tenant files a node keeps open by default: at full load (every pool at
    `pool_size`) they take at most half of the open-files limit, leaving the rest for sockets,
    the platform database and plugins; at least 4, at most 256 (an idle open file costs a
    thread and ~0.3 MB, and reopening one costs about a millisecond)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(4, min(256, soft // 2 // (FILES_PER_CONNECTION * max(1, pool_size))))


class TenantFile(Database):
    """A tenant's SQLite file: a database that knows how many connections are out."""

    def __init__(self, path: Path, pool_size: int) -> None:
        # Not Database.__init__: the engine opens each connection in one trip to its thread.
        self.url = f"sqlite+aiosqlite:///{path.as_posix()}"
        # One connection stays open while idle; up to `pool_size` under concurrent load (the
        # extra ones are closed as they come back). Writers serialise on the file's lock
        # anyway, so more connections would only add files and threads. `secure_delete`:
        # deleted and overwritten values are zeroed in the file, not left in free pages (an
        # erased subject's data must not be recoverable from the tenant's file).
        self.engine = sqlite_file_engine(
            path,
            ("secure_delete=ON",),
            poolclass=AsyncAdaptedQueuePool,
            pool_size=1,
            max_overflow=max(0, pool_size - 1),
            timeout=60,
        )
        self.dialect = "sqlite"
        self.in_use = 0
        self.closed = False  # evicted: closes itself whenever it falls idle
        self.on_idle: Any = None
        pool_events = self.engine.sync_engine
        event.listen(pool_events, "checkout", self._checked_out)
        event.listen(pool_events, "checkin", self._checked_in)

    def _checked_out(self, *_args: Any) -> None:
        self.in_use += 1

    def _checked_in(self, *_args: Any) -> None:
        self.in_use = max(0, self.in_use - 1)
        if self.in_use == 0 and self.on_idle is not None:
            self.on_idle(self)


class OpenFiles:
    """The tenant files open in this process, least recently used first, with counters."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._open: OrderedDict[tuple[str, str], TenantFile] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()
        self.opened = 0  # files opened since start
        self.evicted = 0  # files closed to stay within the bound

    def __len__(self) -> int:
        return len(self._open)

    def get(self, key: tuple[str, str]) -> TenantFile | None:
        found = self._open.get(key)
        if found is not None:
            self._open.move_to_end(key)
        return found

    def add(self, key: tuple[str, str], file: TenantFile) -> None:
        file.on_idle = self._idle
        self._open[key] = file
        self.opened += 1
        self._shrink()

    def _idle(self, file: TenantFile) -> None:
        if file.closed:
            self._close(file)  # evicted while in use: its last connection came back
        elif len(self._open) > self.bound:
            self._shrink()

    def _shrink(self) -> None:
        """Close idle files, least recently used first, until within the bound (busy ones
        are skipped: the bound is exceeded only by files serving a request right now)."""
        if len(self._open) <= self.bound:
            return
        for key in list(self._open):
            if len(self._open) <= self.bound:
                break
            file = self._open[key]
            if file.in_use:
                continue
            del self._open[key]
            file.closed = True
            self.evicted += 1
            self._close(file)

    def _close(self, file: TenantFile) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (interpreter shutdown): the files close with the process
        task = loop.create_task(file.dispose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        files = list(self._open.values())
        self._open.clear()
        for file in files:
            file.closed = True
            await file.dispose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def __iter__(self) -> Iterator[TenantFile]:
        return iter(list(self._open.values()))

    def opening(self, task: asyncio.Task[None]) -> None:
        """Keep a background open (`TenantStorage.open_soon`) until it is done."""
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def stats(self) -> dict[str, int]:
        return {
            "open": len(self._open),
            "bound": self.bound,
            "opened": self.opened,
            "evicted": self.evicted,
            "in_use": sum(1 for f in self._open.values() if f.in_use),
        }


class TenantStorage:
    """The database and schema of each tenant's data."""

    def __init__(
        self,
        platform_db: Database,
        data_dir: Path,
        *,
        open_bound: int | None = None,
        pool_size: int = 3,
    ) -> None:
        self.platform_db = platform_db
        self.data_dir = data_dir
        self.regions: Any = None  # tenancy.Regions, attached by the platform
        self.pool_size = max(1, pool_size)
        self.files = OpenFiles(open_bound or default_open_bound(self.pool_size))

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
        """The tenant's database: its region's (PostgreSQL), else its own file, opened now
        if it is not open (which may close the least recently used idle one)."""
        region = self.home(tenant)
        db = self._region_db(region)
        if not db.is_sqlite:
            return db
        key = (region, tenant.id)
        found = self.files.get(key)
        if found is None:
            found = TenantFile(self._path(region, db, tenant), self.pool_size)
            self.files.add(key, found)
        return found

    def _path(self, region: str, db: Database, tenant: Tenant) -> Path:
        if region == DEFAULT:
            return Path(self.data_dir) / "tenants" / f"{tenant.id}.db"
        # beside the region's file: <region>.db -> <region>-tenants/<id>.db
        region_file = Path(str(db.engine.url.database or f"{region}.db"))
        return region_file.parent / f"{region_file.stem}-tenants" / f"{tenant.id}.db"

    def open_soon(self, tenant: Tenant) -> None:
        """Start opening the tenant's file (its first connection) in the background, if it
        has one and it is not open: a cold tenant's file then opens while its request reads
        the platform database, not after. Any failure is left for the request to meet."""
        region = self.home(tenant)
        db = self._region_db(region)
        if not db.is_sqlite or self.files.get((region, tenant.id)):
            return
        if not self._path(region, db, tenant).exists():
            return  # no data yet: opening would create the file
        file = self.database(tenant)
        task = asyncio.get_running_loop().create_task(_first_connection(file))
        self.files.opening(task)

    def open_databases(self) -> list[Database]:
        """The databases holding records that are open now: PostgreSQL regions, and the
        tenant files this node has open."""
        found: dict[str, Database] = {}
        regions = self.regions.regions if self.regions is not None else [DEFAULT]
        for name in regions:
            db = self._region_db(name)
            if not db.is_sqlite:
                found[db.url] = db
        found.update((f.url, f) for f in self.files)
        return list(found.values())

    async def close(self) -> None:
        await self.files.close()


async def _first_connection(file: Database) -> None:
    try:
        async with file.engine.connect():
            pass  # back to the pool, which keeps it for the request on its way
    except Exception:  # noqa: BLE001 - the request opens it again and meets the error itself
        log.debug("opening %s ahead of its request failed", file.url, exc_info=True)
