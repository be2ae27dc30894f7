"""Where a tenant's records live: isolated by construction, in the tenant's home region.

PostgreSQL: one schema per tenant in the region's database, reached through the region's one
shared pool (no connection per tenant). Statements name no schema: a connection taken for a
tenant (`TenantSchema`) has its `search_path` set to that tenant's schema first (one `SET`,
only when the connection last served another schema), so a statement's text is the same for
every tenant running the same app version and each pooled connection prepares it once, not
once per tenant. Statements on tenant tables carry their tables' shape (`/* v… */`, names
and types of the columns: two tenants' statements share a prepared plan only if their columns
are the same) and are refused on a connection not taken for a tenant, or whose search path is
not the one it was taken for. `TenantSchema`'s `fetch` (the lean read route's way to the
driver) takes its connection the same way, and refuses to run on one whose search path is not
the tenant's.

SQLite: one database file per tenant, under `settings.data_dir/tenants/` for the `default`
region (the platform's) and next to the region's own file for the others, so a query can only
ever reach the tenant whose file it opened. The home region is the first region the tenant's
compliance profile allows (`tenancy.Regions.home`); without regions attached every tenant lives
in `default`.

A node may hold thousands of tenants, but an open SQLite file costs three file descriptors
(`.db`, `-wal`, `-shm`) and an aiosqlite thread per connection. So tenant files are opened on
first use into a small pool each (one connection kept while idle, `tenant_pool_size` at most
under load) and closed, least recently used first, when more than `open_bound` are open. A file
in use is never closed under its user: it is closed when its last connection comes back.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import resource
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary, WeakSet

from sqlalchemy import Table, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.util import find_tables
from sqlalchemy.util import await_only, greenlet_spawn

from plinth.db import Database, Query, Refused, Write, untraced
from plinth.runtime.compiled import TAG
from plinth.sqlite_files import FileEngine, FilePool, file_dialect, sqlite_file_engine
from plinth.sqlite_reads import Gate, ReadsHere, keep_logs
from plinth.tenancy.models import Tenant

DEFAULT = "default"
# The longest value (bytes) a tenant file's read on the loop's thread copies; a read of a
# longer one goes through the pool (see `ReadsHere`).
LONGEST_HERE = 65_536
FILES_PER_CONNECTION = 2  # .db and -wal (a file's -shm is one per process)


def default_open_bound(pool_size: int) -> int:
    """How many tenant files a node keeps open by default: at full load (every pool at
    `pool_size`, and the file's reader on the event loop) they take at most half of the
    open-files limit, leaving the rest for sockets, the platform database and plugins; at
    least 4, at most 256 (an idle open file costs up to a thread and ~0.3 MB, and reopening
    one costs about a millisecond)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    per_file = FILES_PER_CONNECTION * (max(1, pool_size) + 1) + 1  # + the -shm
    return max(4, min(256, soft // 2 // per_file))


class TenantFile(Database):
    """A tenant's SQLite file: a database that knows how many connections are out.

    Its reads run on the event loop's thread (`ReadsHere`), so a tenant that is only read
    never builds its engine: no pool, no pooled connection, no thread. The engine is built
    the first time something needs it (a write, a transaction, a read too long to run here)."""

    def __init__(self, path: Path, pool_size: int, gate: Gate | None = None) -> None:
        # Not Database.__init__: the engine opens each connection in one trip to its thread.
        self.url = f"sqlite+aiosqlite:///{path.as_posix()}"
        self.path = path
        self.pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self.dialect = "sqlite"
        self.closed = False  # evicted: closes itself whenever it falls idle
        self.on_idle: Any = None
        self._here = ReadsHere(path.as_posix(), LONGEST_HERE, gate)

    @property
    def engine(self) -> AsyncEngine:  # type: ignore[override]
        if self._engine is None:
            # One connection stays open while idle; up to `pool_size` under concurrent load
            # (the extra ones are closed as they come back). Writers serialise on the file's
            # lock anyway, so more connections would only add files and threads.
            # `secure_delete`: deleted and overwritten values are zeroed in the file, not
            # left in free pages (an erased subject's data must not be recoverable from the
            # tenant's file).
            self._engine = sqlite_file_engine(
                self.path,
                ("secure_delete=ON",),
                pool_size=1,
                max_overflow=max(0, self.pool_size - 1),
                timeout=60,
            )
            pool: FilePool = self._engine.sync_engine.pool  # type: ignore[assignment]
            pool.on_idle = self._idle
        return self._engine

    # `Database.fetch` asks these before it reads here: answered without building the engine.
    def _sql_dialect(self) -> Dialect:
        return file_dialect()  # the one every tenant file's engine shares

    def _traced(self, query: Query | Write) -> bool:
        return FileEngine.watched() if self._engine is None else super()._traced(query)

    def prepare(self) -> None:
        """Start opening the file for its reads on the loop (see `ReadsHere.prepare`)."""
        if self._here is not None:
            self._here.prepare()

    async def dispose(self) -> None:
        here, self._here = self._here, None  # a request still holding it reads through the pool
        # The last connection's close deletes the file's -wal and -shm: put back for its next
        # open (see `ReadsHere`), after the reader when no engine was built (one trip).
        if here is not None:
            await here.close(keep_logs=self._engine is None)
        if self._engine is not None:
            await self._engine.dispose()
            await keep_logs(self.path.as_posix())

    @property
    def in_use(self) -> int:
        """Connections out of the file's pool now (the engine's current one: disposing of
        the engine swaps in a new pool)."""
        if self._engine is None:
            return 0
        pool: FilePool = self._engine.sync_engine.pool  # type: ignore[assignment]
        return pool.in_use

    def _idle(self) -> None:
        if self.on_idle is not None:
            self.on_idle(self)


class OpenFiles:
    """The tenant files open in this process, least recently used first, with counters."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._open: OrderedDict[tuple[str, str], TenantFile] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()
        self._roomy: asyncio.Future[None] | None = None  # resolved when `crowded` ends
        self.opened = 0  # files opened since start
        self.evicted = 0  # files closed to stay within the bound

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, key: tuple[str, str]) -> bool:  # open, and not touched by asking
        return key in self._open

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
        task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if self._roomy is not None and not self.crowded:
            roomy, self._roomy = self._roomy, None
            if not roomy.done():
                roomy.set_result(None)

    @property
    def crowded(self) -> bool:
        """Whether more evicted files are still closing than the bound leaves room for (a
        quarter of it, at least one). Each holds its descriptors until its close has run,
        and closes run on threads of their own (see `ReadsHere`): when the disk makes them
        slow, cold tenants' opens must wait for them, or evicted files would pile up past
        the open-files budget the bound keeps."""
        return len(self._closing) > max(1, self.bound // 4)

    async def room(self) -> None:
        """Wait until few enough evicted files are still closing (see `crowded`)."""
        while self.crowded:
            if self._roomy is None:
                self._roomy = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._roomy)

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

    def stats(self) -> dict[str, int]:
        return {
            "open": len(self._open),
            "bound": self.bound,
            "opened": self.opened,
            "evicted": self.evicted,
            "in_use": sum(1 for f in self._open.values() if f.in_use),
        }


# The schema a connection is being taken for (set by TenantSchema around the pool checkout).
_taking_for: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "plinth_taking_for", default=None
)
_FOR = "plinth_schema"  # connection info: the tenant schema it was last taken for, or None
_PATH = "plinth_search_path"  # connection info: the search_path it was last SET to
_UNKNOWN = object()
_watched: WeakSet[Any] = WeakSet()  # engines with the listeners below


class TenantIsolationError(Refused):
    """A statement on a tenant's tables on a connection not set to that tenant's schema."""


def search_path(schema: str) -> str:
    # `public` first, as for any connection: the platform's tables (the outbox beside the
    # records, …) resolve and are created where they always are. Tenant tables are named
    # `<app>__<entity>`, which no platform table is, so they resolve in the tenant's schema.
    return f'public, "{schema}"'


def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    schema = _taking_for.get()
    record.info[_FOR] = schema
    if schema is None:
        return  # platform work: its tables resolve the same whatever the search path
    path = search_path(schema)
    if record.info.get(_PATH) == path:
        return
    driver = dbapi_connection.driver_connection
    if driver.is_in_transaction():  # a SET in a transaction could be rolled back unseen
        raise TenantIsolationError("a pooled connection was handed out inside a transaction")
    record.info.pop(_PATH, None)  # unknown until the SET has answered (it may be cancelled)
    await_only(driver.execute(f"SET search_path TO {path}"))
    record.info[_PATH] = path


def _tag_of(statement: Any) -> str | None:
    found = find_tables(statement, check_columns=True, include_crud=True)
    tags = {t.info[TAG] for t in found if isinstance(t, Table) and TAG in t.info}
    return "/* " + " ".join(sorted(tags)) + " */ " if tags else None


def _before_execute(
    conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool
) -> tuple[str, Any]:
    compiled = getattr(context, "compiled", None)
    if compiled is None:
        return statement, parameters
    tag = compiled.__dict__.get("_plinth_tag", _UNKNOWN)
    if tag is _UNKNOWN:
        tag = compiled._plinth_tag = _tag_of(compiled.statement)
    if tag is None:
        return statement, parameters
    schema = conn.info.get(_FOR)
    if schema is None or conn.info.get(_PATH) != search_path(schema):
        raise TenantIsolationError(
            "a statement on tenant tables on a connection not set to a tenant's schema"
        )
    return tag + statement, parameters


# Each prebuilt query's tag, worked out once ("" for a query on no tenant table).
_query_tags: WeakKeyDictionary[Query | Write, str] = WeakKeyDictionary()


def _query_tag(query: Query | Write) -> str:
    found = _query_tags.get(query)
    if found is None:
        found = _query_tags[query] = _tag_of(query.stmt) or ""
    return found


# A platform query or write may run on the driver's connection beside the statement check; one
# on tenant tables goes through it (and is refused there) unless a TenantSchema runs it.
untraced(_before_execute, lambda query: bool(_query_tag(query)))


def watch(engine: AsyncEngine) -> None:
    """Install the search-path switch and the statement check on a PostgreSQL engine."""
    sync = engine.sync_engine
    if sync in _watched:
        return
    event.listen(sync.pool, "checkout", _on_checkout)
    event.listen(sync, "before_cursor_execute", _before_execute, retval=True)
    _watched.add(sync)


# `fetch` on the driver: each prepared query's text with its tables' tag in front (so it is
# cached per shape on a connection, as the statements SQLAlchemy runs are).
_tagged: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()


def _with_tag(prepared: Any, query: Query | Write) -> Any:
    found = _tagged.get(prepared)
    if found is None:
        found = copy.copy(prepared)
        found.sql = _query_tag(query) + prepared.sql
        _tagged[prepared] = found
    return found


class Reserved:
    """Pooled connections taken ahead for a schema's next read on the driver, their search
    path already set (`TenantSchema.prepare`): a cold tenant's `SET search_path` overlaps the
    gateway's reads instead of adding a round trip to its first read. A connection nobody
    claims within `HOLD` seconds goes back to the pool (a GET that reads nothing through the
    driver: an app's document, a list expanding references, a 404; it took a connection of its
    own); at most `MOST` are out at once, so a burst of cold tenants cannot take the whole pool
    ahead of the requests using it. A cold read comes within milliseconds of its gateway."""

    HOLD = 0.25
    MOST = 4

    def __init__(self) -> None:
        self._for: dict[str, asyncio.Task[Any]] = {}
        self.closed = False

    def start(self, schema: str, take: Any) -> None:
        if self.closed or schema in self._for or len(self._for) >= self.MOST:
            return
        loop = asyncio.get_running_loop()
        task = self._for[schema] = loop.create_task(take())
        loop.call_later(self.HOLD, self._expire, schema, task)

    def claim(self, schema: str) -> asyncio.Task[Any] | None:
        return self._for.pop(schema, None)

    def _expire(self, schema: str, task: asyncio.Task[Any]) -> None:
        if self._for.get(schema) is task:
            del self._for[schema]
            task.add_done_callback(_give_back)

    async def close(self) -> None:
        self.closed = True
        tasks = list(self._for.values())
        self._for.clear()
        for task in tasks:
            try:
                raw = await task
            except Exception:  # noqa: BLE001 - the SET failed: no connection to give back
                continue
            await greenlet_spawn(raw.close)


def _give_back(task: asyncio.Task[Any]) -> None:
    """Return a reserved connection nobody claimed (or whose claimer gave up) to the pool."""
    if task.cancelled() or task.exception() is not None:
        return
    raw = task.result()
    closing = asyncio.get_running_loop().create_task(greenlet_spawn(raw.close))
    _returning.add(closing)
    closing.add_done_callback(_returning.discard)


_returning: set[asyncio.Task[Any]] = set()


class TenantSchema(Database):
    """A tenant's schema in a PostgreSQL region's database: the region's engine and pool, each
    connection's search path set to the schema when it is taken (see the module's text)."""

    def __init__(self, region: Database, schema: str, reserved: Reserved | None = None) -> None:
        # Not Database.__init__: the engine (and its pool) is the region's.
        self.url = region.url
        self.engine = region.engine
        self.dialect = region.dialect
        self.schema = schema
        self.reserved = reserved
        watch(region.engine)

    def prepare(self) -> None:
        """Take a pooled connection for this schema now (its `SET search_path` under way),
        for this schema's next read on the driver (`fetch`) to claim (see `Reserved`)."""
        if self.reserved is not None:
            self.reserved.start(self.schema, self._take)

    @asynccontextmanager
    async def _for_schema(self, taken: Any) -> AsyncIterator[AsyncConnection]:
        token = _taking_for.set(self.schema)
        try:
            conn = await taken.__aenter__()  # the pool checkout: the SET happens here
        finally:
            _taking_for.reset(token)
        try:
            yield conn
        except BaseException as exc:
            if not await taken.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await taken.__aexit__(None, None, None)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self._for_schema(super().transaction()) as conn:
            yield conn

    @asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[AsyncConnection]:
        async with self._for_schema(super().read(snapshot=snapshot)) as conn:
            yield conn

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        async with self._for_schema(super().statement()) as conn:
            yield conn

    def _driver_work(self, steps: Any) -> None:
        """A tenant's prebuilt writes go through SQLAlchemy (`transaction`), whose checkout
        sets and checks this schema's search path."""
        return None

    # `Database.fetch` on the driver's connection, taken for this schema: its search path is
    # set at checkout, checked before the query runs, and the query's text carries its tag.
    def _traced(self, query: Query | Write) -> bool:
        listeners = self.engine.sync_engine.dispatch.before_cursor_execute
        return any(fn is not _before_execute for fn in listeners)  # `_run` checks it instead

    async def _ahead(self) -> Any:
        ahead = self.reserved.claim(self.schema) if self.reserved is not None else None
        if ahead is None:
            return None
        try:
            # Shielded: a request that gives up leaves the connection to go back.
            return await asyncio.shield(ahead)
        except asyncio.CancelledError:
            ahead.add_done_callback(_give_back)
            raise
        except Exception:  # noqa: BLE001 - its SET failed: take one the usual way
            return None

    def _checkout(self) -> Any:
        token = _taking_for.set(self.schema)
        try:
            return super()._checkout()  # the SET happens here
        finally:
            _taking_for.reset(token)

    async def _take(self) -> Any:
        """A connection for this schema, taken ahead (`prepare`)."""
        return await greenlet_spawn(self._checkout)

    async def _run(
        self, prepared: Any, query: Query, raw: Any, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if raw.info.get(_PATH) != search_path(self.schema):
            raise TenantIsolationError("a tenant's query on a connection not set to it")
        return await _with_tag(prepared, query).run(raw.driver_connection, params)

    def _write_sql(self, prepared: Any, write: Write, raw: Any) -> str:
        # `execute` as `fetch`: on a connection set to this schema, its text tagged.
        if raw.info.get(_PATH) != search_path(self.schema):
            raise TenantIsolationError("a tenant's write on a connection not set to it")
        return str(_with_tag(prepared, write).sql)


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
        self.reserved = Reserved()  # PostgreSQL connections taken ahead (`prepare`)

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
        """The tenant's database: its schema in its region's (PostgreSQL), else its own file,
        opened now if it is not open (which may close the least recently used idle one)."""
        region = self.home(tenant)
        db = self._region_db(region)
        if not db.is_sqlite:
            return TenantSchema(db, f"t_{tenant.id}", self.reserved)
        key = (region, tenant.id)
        found = self.files.get(key)
        if found is None:
            found = TenantFile(self._path(region, db, tenant), self.pool_size, self.files)
            self.files.add(key, found)
        return found

    def prepare(self, tenant: Tenant) -> None:
        """A request for `tenant` is on its way: start now what its first read would wait on,
        while the request's other work (its gateway settings, policy sets, principal, app)
        runs. Its own file (SQLite) starts opening on a thread; in PostgreSQL, a pooled
        connection is taken and set to its schema. A cold tenant's request then waits for
        little of that, rather than all of it once it reaches its first read. A tenant with
        no file yet gets none: nothing to read, and no open file pushed out for it."""
        region = self.home(tenant)
        home = self._region_db(region)
        if (
            home.is_sqlite
            and (region, tenant.id) not in self.files
            and not self._path(region, home, tenant).exists()
        ):
            return
        db = self.database(tenant)
        if isinstance(db, (TenantFile, TenantSchema)):
            db.prepare()

    async def peek(self, tenant: Tenant, query: Query) -> list[dict[str, Any]] | None:
        """The rows of `query` (a prebuilt SELECT) in the tenant's file, read without opening
        the file for good when it is not open: a reader of its own, closed after, so nothing
        is evicted nor counted as used. [] when the tenant has no file; None when the file
        cannot answer that way (it is open, a table is missing, a lock) or the tenant's data
        is in PostgreSQL: ask `database(tenant)` then. For a sweep of every tenant, which
        would otherwise open each file with its pool and thread in turn."""
        region = self.home(tenant)
        db = self._region_db(region)
        prepared = query.prepared(file_dialect())
        if not db.is_sqlite or prepared is None or (region, tenant.id) in self.files:
            return None
        path = self._path(region, db, tenant)
        if not path.exists():
            return []
        reader = ReadsHere(path.as_posix(), LONGEST_HERE)
        try:
            return await reader.fetch(prepared, {})
        finally:
            await reader.close(keep_logs=True)

    def _path(self, region: str, db: Database, tenant: Tenant) -> Path:
        if region == DEFAULT:
            return Path(self.data_dir) / "tenants" / f"{tenant.id}.db"
        # beside the region's file: <region>.db -> <region>-tenants/<id>.db
        region_file = Path(str(db.engine.url.database or f"{region}.db"))
        return region_file.parent / f"{region_file.stem}-tenants" / f"{tenant.id}.db"

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
        await self.reserved.close()
        await self.files.close()
