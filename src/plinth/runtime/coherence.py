"""A compiled app older than its database: answered by retrying on the new version, never 500.

Another process (a CLI publish on the data dir of a running embedded server) may migrate a
tenant's tables before this process hears of the new version (the change log is polled every
0.25 s). Meanwhile the old compiled app names a column or table that is gone, and the database
says so. The record service then checks the active version: if it changed, the compiled app is
dropped and the call runs once more on the new one; if not (or the retry fails the same way),
the caller gets a typed 503 with Retry-After, never a 500.

A write is retried only if the failure came before its commit (the transaction rolled back):
after a commit the record exists, and a second run would create it twice.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from sqlalchemy.exc import DBAPIError

from plinth.errors import Unavailable

if TYPE_CHECKING:
    from plinth.tenancy.models import Tenant


class _Compiled(Protocol):
    version: int


class _Registry(Protocol):
    def get(self, tenant_id: str, app_slug: str) -> _Compiled | None: ...

    def drop(self, tenant_id: str, app_slug: str) -> None: ...


class _Versions(Protocol):
    async def active_version(self, tenant: Tenant, app_slug: str) -> Any: ...


class Records(Protocol):
    """What the wrapper needs of the record service it wraps (a port: no import of it)."""

    registry: _Registry
    metadata: _Versions


C = TypeVar("C", bound=Callable[..., Awaitable[Any]])

# SQLite's messages; PostgreSQL's SQLSTATEs for undefined_column and undefined_table.
_SQLITE = ("no such column", "has no column named", "no such table")
_POSTGRES = ("42703", "42P01")

# Set by a write once it has committed, for the call that runs it.
_committed: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "plinth_record_committed", default=None
)


def stale_schema(exc: DBAPIError) -> bool:
    """Whether the database refused a statement naming a column or table it does not have."""
    if getattr(exc.orig, "sqlstate", None) in _POSTGRES:
        return True
    return any(m in str(exc.orig).lower() for m in _SQLITE)


def committed() -> None:
    """Note that the running record call has committed its write (it must not run again)."""
    box = _committed.get()
    if box is not None:
        box[0] = True


def _unavailable(app_slug: str) -> Unavailable:
    return Unavailable(
        f"App {app_slug!r} is changing to a new version; retry in a moment",
        path="app",
        headers={"Retry-After": "1"},
    )


def on_new_version(call: C) -> C:
    """Wrap a RecordService method `(self, tenant, app_slug, …)` as the module says."""

    @functools.wraps(call)
    async def wrapper(self: Records, tenant: Tenant, app_slug: str, *a: Any, **k: Any) -> Any:
        box = _committed.get() or [False]  # a nested call shares its caller's
        token = _committed.set(box)
        try:
            try:
                return await call(self, tenant, app_slug, *a, **k)
            except DBAPIError as exc:
                if not stale_schema(exc) or box[0]:
                    raise
                held = self.registry.get(tenant.id, app_slug)
                active = await self.metadata.active_version(tenant, app_slug)
                if active is None or (held is not None and held.version == active.number):
                    raise _unavailable(app_slug) from exc
                self.registry.drop(tenant.id, app_slug)
            try:
                return await call(self, tenant, app_slug, *a, **k)
            except DBAPIError as exc:
                if stale_schema(exc) and not box[0]:
                    raise _unavailable(app_slug) from exc
                raise
        finally:
            _committed.reset(token)

    return cast(C, wrapper)
