"""The host side of one plugin call: every door out of the sandbox, each checked.

A call runs in a worker process; each host call the guest makes comes back here, to the server
process, and runs on its event loop, bounded by the call's own deadline (cancelled at it).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from plinth.db import Database
from plinth.errors import PlinthError
from plinth.extensions import store
from plinth.extensions.models import MAX_LOG_LINES, Installation, Limits
from plinth.extensions.ports import Services
from plinth.governance.principal import Principal
from plinth.tenancy.models import Tenant


class Plugins(Protocol):
    """What host functions use of the plugin service (which builds the host per call)."""

    db: Database
    platform: Services


log = logging.getLogger("plinth.plugins")
# How many plugin calls are running beneath the current one (a host capability's coroutine
# runs at its caller's depth + 1, so a record write by a plugin that triggers a before-write
# hook is a nested call).
DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("plinth_plugin_depth", default=0)

MAX_KV_VALUE = 64 << 10
MAX_KV_KEYS = 1000
MAX_KEY = 200
MAX_HTTP_BODY = 1 << 20


class CallHost:
    """Capabilities for one call of one plugin by one principal in one tenant."""

    def __init__(
        self,
        service: Plugins,
        tenant: Tenant,
        inst: Installation,
        principal: Principal,
        limits: Limits,
    ) -> None:
        self.service = service
        self.tenant = tenant
        self.inst = inst
        self.principal = principal
        self.deadline = time.monotonic() + limits.timeout_ms / 1000
        self.logged = 0
        self.depth = DEPTH.get()  # of this call (0: called by a person, a workflow, ...)

    async def call(self, capability: str, func: str, args: list[Any]) -> tuple[str, str]:
        """Check the grant, then run the host function within the call's deadline; failures
        return as ("err", why)."""
        if capability not in self.inst.capabilities:
            return "err", f"capability {capability!r} is not granted to {self.inst.name}"
        method: Callable[..., Awaitable[str]] | None = getattr(
            self, "_" + func.replace(".", "_"), None
        )
        if method is None:
            return "err", f"{func} is no host function"

        async def run() -> str:
            DEPTH.set(self.depth + 1)  # this task's own context: reset when it ends
            return await method(*args)

        try:
            return "ok", await asyncio.wait_for(run(), self._remaining())
        except TimeoutError:
            return "err", f"{func} did not finish before the call's deadline"
        except PlinthError as exc:
            return "err", f"{exc.code}: {exc.detail}"
        except Exception as exc:  # a host bug must not crash the sandbox or leak internals
            log.warning("plugin host call %s failed: %s", func, type(exc).__name__)
            return "err", f"{func} failed"

    def _remaining(self) -> float:
        return max(0.01, self.deadline - time.monotonic())

    # -- log, clock ------------------------------------------------------------------------
    async def _log_log(self, level: str, message: str) -> str:
        self.logged += 1
        if self.logged <= MAX_LOG_LINES:  # a chatty plugin cannot flood the log
            log.info(
                "[%s/%s] %s: %s",
                self.tenant.slug,
                self.inst.name,
                str(level)[:10],
                str(message)[:2000],
            )
        return ""

    async def _clock_now(self) -> str:
        return datetime.now(UTC).isoformat()

    # -- kv --------------------------------------------------------------------------------
    async def _kv_get(self, key: str) -> str:
        return str(await self._kv_read(key[:MAX_KEY]))

    async def _kv_set(self, key: str, value: str) -> str:
        if len(key) > MAX_KEY or not key:
            raise _Refused(f"kv keys are 1..{MAX_KEY} characters")
        if len(value) > MAX_KV_VALUE:
            raise _Refused(f"kv values are at most {MAX_KV_VALUE} bytes")
        await self._kv_write(key, value)
        return "null"

    async def _kv_read(self, key: str) -> str:
        kv = store.plugin_kv
        async with self.service.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(kv.c.value).where(
                        kv.c.tenant_id == self.tenant.id,
                        kv.c.plugin == self.inst.name,
                        kv.c.key == key,
                    )
                )
            ).first()
        return row.value if row else "null"

    async def _kv_write(self, key: str, value: str) -> None:
        kv = store.plugin_kv
        where = (kv.c.tenant_id == self.tenant.id, kv.c.plugin == self.inst.name)
        async with self.service.db.transaction() as conn:
            updated = await conn.execute(
                kv.update().where(*where, kv.c.key == key).values(value=value)
            )
            if updated.rowcount == 0:
                count = (
                    await conn.execute(sa.select(sa.func.count()).select_from(kv).where(*where))
                ).scalar_one()
                if count >= MAX_KV_KEYS:
                    raise _Refused(f"kv holds at most {MAX_KV_KEYS} keys per plugin")
                await conn.execute(
                    kv.insert().values(
                        tenant_id=self.tenant.id, plugin=self.inst.name, key=key, value=value
                    )
                )

    # -- http ------------------------------------------------------------------------------
    async def _http_fetch(self, method: str, url: str, body: str) -> str:
        # Through the integration layer: the grant's hosts, the SSRF guard, no redirects,
        # the call's deadline, a response size limit, an audit event.
        connectors = self.service.platform.connectors
        return json.dumps(
            await connectors.plugin_fetch(
                self.tenant,
                self.inst.name,
                self.principal,
                method,
                url,
                body.encode() if body else None,
                hosts=self.inst.http_hosts,
                seconds=self._remaining(),
                max_bytes=MAX_HTTP_BODY,
            )
        )

    # -- records (through the runtime service, with the caller's permissions) ---------------
    def _records_service(self) -> Any:
        return self.service.platform.records

    async def _records_get(self, app: str, entity: str, id: str) -> str:
        svc = self._records_service()
        return _dump(await svc.get(self.tenant, app, entity, id, self.principal))

    async def _records_query(self, app: str, entity: str, filter: str, limit: int) -> str:
        svc = self._records_service()
        ast = _json(filter) if filter else None
        found = await svc.query(
            self.tenant, app, entity, self.principal, filter=ast, limit=min(int(limit), 500)
        )
        return _dump(found)

    async def _records_create(self, app: str, entity: str, data: str) -> str:
        svc = self._records_service()
        return _dump(await svc.create(self.tenant, app, entity, _json(data), self.principal))

    async def _records_update(self, app: str, entity: str, id: str, changes: str) -> str:
        svc = self._records_service()
        return _dump(await svc.update(self.tenant, app, entity, id, _json(changes), self.principal))


def _json(text: str) -> Any:
    """A guest's JSON argument, held to what a request body may be (jsontext)."""
    from plinth import jsontext

    return jsontext.loads(text)


class _Refused(PlinthError):
    code = "capability_refused"
    status = 403


class _Unavailable(PlinthError):
    code = "capability_unavailable"
    status = 503


def _dump(value: Any) -> str:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    elif hasattr(value, "as_dict"):
        value = value.as_dict()
    elif isinstance(value, list):
        value = [v.as_dict() if hasattr(v, "as_dict") else v for v in value]
    return json.dumps(value, default=str)
