"""The record service: create, read, update, delete and query records of published entities.

Every operation authorizes through the one seam (`governance.access.authorize`), applies the
authorizer's row filter and field access when it offers them, runs on the compiled entity of
the active version, and writes in one transaction that also holds the write's outbox rows (its
audit entry, webhook deliveries and workflow starts: `plinth.outbox`); after commit those are
dispatched and the record events published.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from plinth import envelope
from plinth.db import Database, Query, Write, utcnow
from plinth.errors import (
    BadRequest,
    Conflict,
    Fault,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from plinth.events import Event, EventBus
from plinth.governance.access import (
    DENY_ALL,
    PER_ROW,
    Authorizer,
    Decision,
    Resource,
    authorize,
    enforce,
)
from plinth.governance.principal import Principal
from plinth.ids import new_id
from plinth.metadata.models import Version
from plinth.metadata.service import MetadataService
from plinth.outbox import Outbox
from plinth.runtime import coherence, records, types
from plinth.runtime.coherence import on_new_version
from plinth.runtime.compiled import CompiledApp, CompiledEntity, Registry
from plinth.runtime.filters import column, compile_filter, fields_of
from plinth.runtime.maintenance import Maintenance
from plinth.runtime.storage import TenantStorage
from plinth.tenancy.models import Tenant

MAX_LIMIT = 500
MAX_BATCH = 1000


# Primed versions (see RecordService.prime) are kept this long, and at most this many.
PRIMED_SECONDS = 5.0
PRIMED_BOUND = 1024


class RecordService:
    """Records of every tenant's published apps."""

    def __init__(
        self,
        db: Database,
        events: EventBus,
        metadata: MetadataService,
        authorizer: Callable[[], Authorizer],
        data_dir: Path,
        outbox: Outbox,
        *,
        open_files: int | None = None,
        pool_size: int = 3,
        cached_apps: int = 10_000,
    ) -> None:
        self.db = db
        self.events = events
        self.outbox = outbox  # the side effects of each write, committed with it
        self.metadata = metadata
        self._authorizer = authorizer
        self.storage = TenantStorage(db, data_dir, open_bound=open_files, pool_size=pool_size)
        self.registry = Registry(cached_apps)
        # Active versions read moments ago with a tenant's policies (`prime`), each used once
        # by the first compile of its app instead of another read of the platform database.
        self._primed: dict[tuple[str, str], tuple[float, Version]] = {}
        # Hooks that see each record before it is checked and written (plugins' before-write):
        # `await hook(tenant, app, entity, record, principal)` returns the record, maybe
        # amended, or raises (ValidationFailed with field paths rejects the write).
        self.before_write: list[Callable[..., Awaitable[dict[str, Any]]]] = []
        # Compliance enforcement (governance.compliance.guard.RecordGuard): residency and
        # encryption on write, decryption on read, masking and read audit in responses.
        # Attached by the compliance service; None leaves records as they are.
        self.guard: Any = None
        self._process_cursor_key: bytes | None = None
        self.maintenance = Maintenance(self)  # subject export/erasure, retention
        for topic in ("app.deleted", "app.published", "app.rolled_back"):
            events.subscribe(topic, self._forget, cluster=True)

    async def _forget(self, event: Event) -> None:
        """Drop a compiled app another node changed (this node swapped its own already)."""
        if not event.tenant_id:
            return
        slug = event.data.get("app", "")
        self._primed.pop((event.tenant_id, slug), None)
        current = self.registry.get(event.tenant_id, slug)
        if current is not None and current.version != event.data.get("version"):
            self.registry.drop(event.tenant_id, slug)

    async def close(self) -> None:
        await self.storage.close()

    def prime(self, tenant_id: str, active: dict[str, Version]) -> None:
        """Keep the active versions just read for a cold tenant, for its apps' first compile."""
        now = time.monotonic()
        for slug, version in active.items():
            if self.registry.get(tenant_id, slug) is None:
                self._primed[(tenant_id, slug)] = (now, version)
        while len(self._primed) > PRIMED_BOUND:  # the oldest first (insertion order)
            del self._primed[next(iter(self._primed))]

    # -- lookups ----------------------------------------------------------------------------

    async def compiled(self, tenant: Tenant, app_slug: str) -> CompiledApp:
        """The compiled active version of an app (compiled on first use after a restart)."""
        found = self.registry.get(tenant.id, app_slug)
        if found is not None:
            return found
        primed = self._primed.pop((tenant.id, app_slug), None)
        if primed is not None and time.monotonic() - primed[0] < PRIMED_SECONDS:
            version: Version | None = primed[1]
        else:
            version = await self.metadata.active_version(tenant, app_slug)
        if version is None:
            raise NotFound(f"App {app_slug!r} has no published version yet", path="app")
        app = self.registry.compile(
            tenant.id,
            app_slug,
            version.number,
            version.hash,
            version.definition,
        )
        # A concurrent publish may have put a newer one meanwhile; never go backwards.
        current = self.registry.get(tenant.id, app_slug)
        if current is None or current.version < app.version:
            self.registry.put(app)
        return self.registry.get(tenant.id, app_slug) or app

    async def entity(
        self, tenant: Tenant, app_slug: str, name: str
    ) -> tuple[CompiledApp, CompiledEntity]:
        app = await self.compiled(tenant, app_slug)
        entity = app.entities.get(name)
        if entity is None:
            raise NotFound(
                f"App {app_slug!r} has no entity {name!r}", path="entity", extra={"entity": name}
            )
        return app, entity

    # -- authorization ----------------------------------------------------------------------

    def _authorize(
        self,
        principal: Principal,
        action: str,
        tenant: Tenant,
        app_slug: str,
        entity: str,
        record_id: str | None,
        record: dict[str, Any] | None,
    ) -> None:
        authorize(
            self._authorizer(),
            principal,
            action,
            Resource(
                "record",
                record_id or entity,
                tenant_id=tenant.id,
                attrs={"app": app_slug, "entity": entity, "record": record},
            ),
        )

    def _access(
        self, principal: Principal, tenant: Tenant, app_slug: str, entity: str
    ) -> tuple[set[str] | None, set[str] | None]:
        decide = getattr(self._authorizer(), "field_access", None)
        if decide is None:
            return None, None
        readable, writable = decide(principal, tenant, app_slug, entity)
        return readable, writable

    def _list_access(
        self, principal: Principal, tenant: Tenant, app_slug: str, entity: CompiledEntity
    ) -> tuple[dict[str, Any] | None, bool]:
        """Authorize listing `entity`: (row filter AST or None, whether to check each row).

        With row-level policies, the list is decided by partial evaluation (a residual turned
        into SQL), not by a decision on "the entity", which has no attributes to test.
        """
        authorizer = self._authorizer()
        row_filter = getattr(authorizer, "row_filter", None)
        if row_filter is None:
            self._authorize(principal, "data.read", tenant, app_slug, entity.name, None, None)
            return None, False
        ast = row_filter(principal, "data.read", tenant, app_slug, entity.name)
        if ast == PER_ROW:
            return None, True
        if ast == DENY_ALL:
            enforce(
                authorizer,
                principal,
                "data.read",
                Resource(
                    "record",
                    entity.name,
                    tenant_id=tenant.id,
                    attrs={"app": app_slug, "entity": entity.name, "record": None},
                ),
                Decision(False, ("no-policy-permits",)),
            )
        if ast is not None and any(
            entity.fields.get(n, {}).get("encrypted") for n in fields_of(ast)
        ):
            # Ciphertext cannot be compared in SQL: decide on each decrypted row instead.
            return None, True
        return ast, False

    def _may_read(
        self,
        principal: Principal,
        tenant: Tenant,
        app_slug: str,
        entity: str,
        record: dict[str, Any],
    ) -> bool:
        decision = self._authorizer().decide(
            principal,
            "data.read",
            Resource(
                "record",
                record["id"],
                tenant_id=tenant.id,
                attrs={"app": app_slug, "entity": entity, "record": record},
            ),
        )
        return decision.allowed

    @staticmethod
    def _check_writable(writable: set[str] | None, data: dict[str, Any], prefix: str) -> None:
        if writable is None:
            return
        for name in data:
            if name not in writable:
                path = f"{prefix}{name}"
                raise Forbidden(f"You may not write field {name!r}", path=path)

    # -- writes -----------------------------------------------------------------------------

    @on_new_version
    async def create(
        self,
        tenant: Tenant,
        app_slug: str,
        entity: str,
        data: dict[str, Any] | list[dict[str, Any]],
        principal: Principal,
        *,
        record_id: str | None = None,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Create one record, or a list of them all-or-nothing.

        `record_id` lets a trusted caller (a workflow step, from its idempotency key) choose
        the id of a single record, so creating it again is a Conflict, never a second record.
        """
        app, ent = await self.entity(tenant, app_slug, entity)
        self._authorize(principal, "data.create", tenant, app_slug, entity, None, None)
        many = isinstance(data, list)
        items = data if isinstance(data, list) else [data]
        if not items or len(items) > MAX_BATCH:
            raise ValidationFailed.of([Fault("", f"send 1 to {MAX_BATCH} records")])
        readable, writable = self._access(principal, tenant, app_slug, entity)
        rows: list[dict[str, Any]] = []
        faults: list[Fault] = []
        now = utcnow()
        by = principal.audit_name()
        for i, item in enumerate(items):
            prefix = f"[{i}]" if many else ""
            if not isinstance(item, dict):
                faults.append(Fault(prefix, "a record is an object", "type"))
                continue
            item = records.strip_system(item)
            self._check_writable(writable, item, f"{prefix}." if prefix else "")
            # The caller's input is validated before any hook sees it (a hook is written for
            # valid records: bad input is the caller's 422, never the plugin's failure), and
            # what the hooks return is validated again.
            row, found = records.check(ent, records.with_defaults(ent, item), prefix)
            if not found and self.before_write:
                for hook in self.before_write:
                    item = records.strip_system(
                        await hook(tenant, app_slug, entity, item, principal)
                    )
                row, found = records.check(ent, records.with_defaults(ent, item), prefix)
            faults += found
            if found:
                continue
            row.update(
                id=record_id if record_id and not many else new_id(),
                version=1,
                created_at=now,
                updated_at=now,
                created_by=by,
                updated_by=by,
            )
            rows.append(row)
        if faults:
            raise ValidationFailed.of(faults)
        db = self.storage.database(tenant)
        # The rows hold exactly what was stored (values were converted before the insert),
        # so the records (and their events) are built from them without reading back.
        out = [records.to_record(ent, r) for r in rows]
        events = [
            await self._event("record.created", tenant, app, entity, rec["id"], None, rec, by)
            for rec in out
        ]
        await self.outbox.prepare(db)
        sealed = await self._seal(tenant, ent, rows, many)
        if db.dialect == "postgresql" and len(sealed) == 1 and not _refers(ent, rows):
            # The record and its outbox row in one statement: atomic without BEGIN/COMMIT.
            stmt = self._create_statement(ent, sealed[0].keys())
            params, written = self.outbox.values(events)
            params.update((f"r_{k}", v) for k, v in sealed[0].items())
            try:
                await db.execute(stmt, params)
            except IntegrityError as exc:
                raise _conflict(ent, exc) from None
        elif _refers(ent, rows) or len({frozenset(r) for r in sealed}) != 1:
            async with db.transaction() as conn:
                await self._check_references(conn, tenant, app, ent, rows, many)
                await self._write(conn, ent, ent.insert, sealed)
                written = await self.outbox.write(conn, db, events)
        else:
            # The records, their outbox rows (and a batch of spent ones) as prebuilt statements
            # in one transaction: on SQLite one trip to the file's connection thread.
            steps, written = self.outbox.writes(db, events)
            try:
                await db.write([(self._insert_statement(ent, sealed[0].keys()), sealed), *steps])
            except IntegrityError as exc:
                raise _conflict(ent, exc) from None
        await self._announce(db, written, events)
        shown = [self._visible(rec, readable) for rec in out]
        await self._present(principal, tenant, app_slug, ent, shown)
        return shown if many else shown[0]

    @on_new_version
    async def update(
        self,
        tenant: Tenant,
        app_slug: str,
        entity: str,
        record_id: str,
        changes: dict[str, Any],
        principal: Principal,
        *,
        replace: bool = False,
        if_version: int | None = None,
    ) -> dict[str, Any]:
        """Merge `changes` into a record (or replace its fields), optionally if unchanged."""
        app, ent = await self.entity(tenant, app_slug, entity)
        if not isinstance(changes, dict):
            raise ValidationFailed.of([Fault("", "a record is an object", "type")])
        readable, writable = self._access(principal, tenant, app_slug, entity)
        changes = records.strip_system(changes)
        self._check_writable(writable, changes, "")
        db = self.storage.database(tenant)
        by = principal.audit_name()
        # Read, merge, run the before-write hooks and seal outside the write transaction: a
        # hook (a plugin) may take long or write records itself, and must not hold the
        # tenant's write lock meanwhile. The write then applies only if the record is still
        # at the version read (else 412, like a concurrent update).
        async with db.read() as conn:
            row = (await conn.execute(ent.select, {"record_id": record_id})).first()
        before = await self._open(tenant, ent, self._found(ent, row, record_id))
        self._authorize(principal, "data.update", tenant, app_slug, entity, record_id, before)
        self._check_version(before, if_version)
        if self.guard is not None:
            changes = self.guard.keep_masked(principal, tenant, app_slug, ent, before, changes)
        emptied: frozenset[str] = frozenset()
        if replace:
            data = records.with_defaults(ent, changes)
        else:
            data = {n: before[n] for n in ent.input_fields if before.get(n) is not None}
            data.update(changes)
            # Fields anonymisation emptied stay empty; the rest of the record can still change.
            emptied = frozenset(
                n for n in ent.protection.anonymised if before.get(n) is None and n not in changes
            )
        values, faults = records.check(ent, data, anonymised=emptied)  # before the hooks
        if not faults and self.before_write:
            for hook in self.before_write:
                data = records.strip_system(await hook(tenant, app_slug, entity, data, principal))
            values, faults = records.check(ent, data, anonymised=emptied)
        if faults:
            raise ValidationFailed.of(faults)
        values.update(version=before["version"] + 1, updated_at=utcnow(), updated_by=by)
        stored = (await self._seal(tenant, ent, [{**values, "id": record_id}], False))[0]
        stored.pop("id")
        t = ent.table
        await self.outbox.prepare(db)
        async with db.transaction() as conn:
            await self._check_references(conn, tenant, app, ent, [values], False)
            stmt = t.update().where(t.c.id == record_id, t.c.version == before["version"])
            result = await self._write(conn, ent, stmt.values(stored), None)
            if result.rowcount != 1:
                raise PreconditionFailed(
                    "The record changed meanwhile; reload it and retry", path="id"
                )
            after = await self._open(
                tenant,
                ent,
                records.to_record(
                    ent, (await conn.execute(ent.select, {"record_id": record_id})).one()
                ),
            )
            events = [
                await self._event(
                    "record.updated", tenant, app, entity, record_id, before, after, by
                )
            ]
            written = await self.outbox.write(conn, db, events)
        await self._announce(db, written, events)
        shown = self._visible(after, readable)
        await self._present(principal, tenant, app_slug, ent, [shown])
        return shown

    @on_new_version
    async def delete(
        self,
        tenant: Tenant,
        app_slug: str,
        entity: str,
        record_id: str,
        principal: Principal,
        *,
        if_version: int | None = None,
    ) -> None:
        """Delete a record, optionally only if it is still at `if_version`."""
        app, ent = await self.entity(tenant, app_slug, entity)
        db = self.storage.database(tenant)
        by = principal.audit_name()
        await self.outbox.prepare(db)
        async with db.transaction() as conn:
            row = (await conn.execute(ent.select, {"record_id": record_id})).first()
            before = await self._open(tenant, ent, self._found(ent, row, record_id))
            self._authorize(principal, "data.delete", tenant, app_slug, entity, record_id, before)
            self._check_version(before, if_version)
            await self._refuse_if_referenced(conn, app, ent, record_id)
            await conn.execute(ent.table.delete().where(ent.table.c.id == record_id))
            events = [
                await self._event(
                    "record.deleted", tenant, app, entity, record_id, before, None, by
                )
            ]
            written = await self.outbox.write(conn, db, events)
        await self._announce(db, written, events)

    # -- reads ------------------------------------------------------------------------------

    @on_new_version
    async def get(
        self, tenant: Tenant, app_slug: str, entity: str, record_id: str, principal: Principal
    ) -> dict[str, Any]:
        """One record by id."""
        _app, ent = await self.entity(tenant, app_slug, entity)
        readable, _ = self._access(principal, tenant, app_slug, entity)
        rows = await self.storage.database(tenant).fetch(ent.one, {"record_id": record_id})
        record = await self._open(
            tenant, ent, self._found(ent, rows[0] if rows else None, record_id)
        )
        self._authorize(principal, "data.read", tenant, app_slug, entity, record_id, record)
        shown = self._visible(record, readable)
        await self._present(principal, tenant, app_slug, ent, [shown])
        return shown

    @on_new_version
    async def query(
        self,
        tenant: Tenant,
        app_slug: str,
        entity: str,
        principal: Principal,
        *,
        filter: dict[str, Any] | None = None,
        sort: list[str] | None = None,
        fields: list[str] | None = None,
        expand: list[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """A page of records: filtered, sorted, projected, expanded, keyset-paginated."""
        app, ent = await self.entity(tenant, app_slug, entity)
        row_ast, per_row = self._list_access(principal, tenant, app_slug, ent)
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}", path="limit")
        readable, _ = self._access(principal, tenant, app_slug, entity)
        # Sorting or filtering on a field the caller sees masked, or may not read, would reveal
        # its value (an ordering and a value oracle): refused, like reading it.
        hidden = self._hidden(principal, tenant, app_slug, ent, readable)
        keys = self._sort_keys(ent, sort or ["created_at"], hidden)
        if filter:
            for name in fields_of(filter):
                self._refuse_hidden(ent, name, hidden, "filter")
        cursor_aad = "\x00".join(
            [tenant.id, app_slug, entity, *(f"{col.name}:{int(asc)}" for col, asc in keys)]
        ).encode()

        def build(after_cursor: bool) -> sa.Select[Any]:
            conditions = []
            if filter:
                conditions.append(compile_filter(ent, filter))
            if row_ast is not None:
                conditions.append(compile_filter(ent, row_ast))
            if after_cursor:
                assert cursor is not None
                values = _decode_cursor(self._cursor_key(), cursor_aad, cursor, len(keys))
                conditions.append(self._after(keys, values))
            stmt = sa.select(ent.table)
            if conditions:
                stmt = stmt.where(sa.and_(*conditions))
            return stmt.order_by(
                *[col.asc().nulls_first() if asc else col.desc().nulls_last() for col, asc in keys]
            ).limit(limit + 1)

        # A page after a cursor binds that cursor's values: built each time. Others are
        # built once per shape (`CompiledEntity.plans`).
        plan = None if cursor else _shape(filter, row_ast, keys, limit)
        stmt: Query | sa.Select[Any] = (
            build(bool(cursor))
            if plan is None
            else ent.plans.get(plan, lambda: Query(build(False)))
        )
        for name in fields or []:
            column(ent, name, "fields")
            if readable is not None and name not in readable and name in ent.fields:
                raise Forbidden(f"You may not read field {name!r}", path=f"fields.{name}")
        for name in expand or []:
            if name not in ent.references:
                raise BadRequest(
                    f"{name!r} is not a reference field of {entity!r}",
                    path="expand",
                    extra={"field": name},
                )
        db = self.storage.database(tenant)

        async def page(rows: list[Any]) -> tuple[list[Any], bool, list[dict[str, Any]]]:
            more = len(rows) > limit
            rows = rows[:limit]
            # Decrypted before any policy sees them (as get() does): a condition on an
            # encrypted field compares plaintext, never ciphertext.
            full = [await self._open(tenant, ent, records.to_record(ent, r, None)) for r in rows]
            if per_row:
                # The policy could not become SQL: check each row, never return a denied one.
                # A page may then hold fewer than `limit` items; the cursor stays correct.
                full = [
                    rec for rec in full if self._may_read(principal, tenant, app_slug, entity, rec)
                ]
            return rows, more, [self._visible(rec, readable) for rec in full]

        if isinstance(stmt, Query) and not expand:
            rows, more, items = await page(await db.fetch(stmt))  # one prepared statement
        else:
            # One statement unless references are expanded (those must read the same state).
            async with db.read() if expand else db.statement() as conn:
                found = await conn.execute(stmt.stmt if isinstance(stmt, Query) else stmt)
                rows, more, items = await page([row._mapping for row in found])
                for name in expand or []:
                    await self._expand(conn, tenant, app, ent, name, items, principal)
        next_cursor = None
        if more and rows:
            last = rows[-1]
            next_cursor = _encode_cursor(
                self._cursor_key(), cursor_aad, [_cursor_value(last[col.name]) for col, _ in keys]
            )
        if fields:
            keep = set(fields) | {"id"}
            items = [{k: v for k, v in item.items() if k in keep} for item in items]
        await self._present(principal, tenant, app_slug, ent, items)
        return {"items": items, "next_cursor": next_cursor}

    # -- internals --------------------------------------------------------------------------

    def _hidden(
        self,
        principal: Principal,
        tenant: Tenant,
        app_slug: str,
        ent: CompiledEntity,
        readable: set[str] | None,
    ) -> set[str]:
        """Fields whose values the caller may not see in full: unreadable or masked for them."""
        hidden = {n for n in ent.fields if readable is not None and n not in readable}
        if self.guard is not None:
            hidden |= self.guard.masked_for(principal, tenant, app_slug, ent)
        return hidden

    @staticmethod
    def _refuse_hidden(
        ent: CompiledEntity, name: Any, hidden: frozenset[str] | set[str], where: str
    ) -> None:
        if name in hidden:
            masked = name in ent.protection.mask
            raise Forbidden(
                f"Field {name!r} is {'masked' if masked else 'not readable'} for "
                f"you, so it cannot be used in {where} (that would reveal its "
                "values)",
                path=f"{where}.{name}",
                extra={"field": name},
            )

    def _cursor_key(self) -> bytes:
        """The key cursors are sealed with: derived from the master key when enforcement is
        attached (every node agrees), else one per process."""
        if self.guard is not None:
            return self.guard.keys.derive(b"plinth-cursor-v1")  # type: ignore[no-any-return]
        if self._process_cursor_key is None:
            self._process_cursor_key = envelope.new_key()
        return self._process_cursor_key

    @classmethod
    def _sort_keys(
        cls, ent: CompiledEntity, sort: list[str], hidden: frozenset[str] | set[str] = frozenset()
    ) -> list[tuple[Any, bool]]:
        keys: list[tuple[Any, bool]] = []
        for item in sort[:8]:
            item = item.strip()
            asc = not item.startswith("-")
            name = item.lstrip("+-")
            col = column(ent, name, "sort")
            cls._refuse_hidden(ent, name, hidden, "sort")
            if ent.fields.get(name, {}).get("type") in ("json", "attachment"):
                raise BadRequest(f"Cannot sort on json field {name!r}", path="sort")
            keys.append((col, asc))
        if all(col.name != "id" for col, _ in keys):
            # A total order, so cursors never skip rows. The id runs the way the last key does,
            # so one index on (fields…, id) serves the sort both ways (migrate makes them so).
            keys.append((ent.table.c.id, keys[-1][1] if keys else True))
        return keys

    @staticmethod
    def _after(keys: list[tuple[Any, bool]], values: list[Any]) -> sa.ColumnElement[bool]:
        """Rows strictly after the cursor, in the sort order (nulls first ascending)."""
        ors = []
        equal: list[Any] = []
        for (col, asc), raw in zip(keys, values, strict=True):
            value = _from_cursor(col, raw)
            if asc:
                greater = col.is_not(None) if value is None else col > value
            else:
                greater = sa.false() if value is None else sa.or_(col < value, col.is_(None))
            ors.append(sa.and_(*equal, greater))
            equal.append(col.is_(None) if value is None else col == value)
        return sa.or_(*ors)

    async def _write(
        self, conn: Any, ent: CompiledEntity, stmt: Any, rows: list[dict[str, Any]] | None
    ) -> Any:
        try:
            return await (conn.execute(stmt, rows) if rows is not None else conn.execute(stmt))
        except IntegrityError as exc:
            raise _conflict(ent, exc) from None

    @staticmethod
    def _insert_statement(ent: CompiledEntity, columns: Any) -> Write:
        """The INSERT of records setting `columns` (built once per entity version)."""
        key = ("insert", frozenset(columns))
        stmt = ent.statements.get(key)
        if stmt is None:
            stmt = ent.statements[key] = Write(ent.insert, columns)
        return stmt  # type: ignore[no-any-return]

    def _create_statement(self, ent: CompiledEntity, columns: Any) -> Write:
        """The one statement of a create setting `columns` (built once per entity version)."""
        key = ("create", frozenset(columns))
        stmt = ent.statements.get(key)
        if stmt is None:
            t = ent.table
            record = t.insert().values(
                {c: sa.bindparam(f"r_{c}", type_=t.c[c].type) for c in sorted(columns)}
            )
            stmt = ent.statements[key] = Write(self.outbox.statement(record.cte("record")))
        return stmt  # type: ignore[no-any-return]

    async def _check_references(
        self,
        conn: Any,
        tenant: Tenant,
        app: CompiledApp,
        ent: CompiledEntity,
        rows: list[dict[str, Any]],
        many: bool,
    ) -> None:
        faults: list[Fault] = []
        for name, target in ent.references.items():
            ids = {r[name] for r in rows if r.get(name) is not None}
            if not ids:
                continue
            tt = app.entities[target].table
            found = set((await conn.execute(sa.select(tt.c.id).where(tt.c.id.in_(ids)))).scalars())
            for i, row in enumerate(rows):
                if row.get(name) is not None and row[name] not in found:
                    path = f"[{i}].{name}" if many else name
                    faults.append(
                        Fault(path, f"no {target} with id {row[name]!r}", "unknown_reference")
                    )
        if faults:
            raise ValidationFailed.of(faults)

    async def _refuse_if_referenced(
        self, conn: Any, app: CompiledApp, ent: CompiledEntity, record_id: str
    ) -> None:
        for other in app.entities.values():
            for name, target in other.references.items():
                if target != ent.name:
                    continue
                t = other.table
                hit = (
                    await conn.execute(sa.select(t.c.id).where(t.c[name] == record_id).limit(1))
                ).first()
                if hit is not None:
                    raise Conflict(
                        f"{other.name} {hit.id} still refers to this record (field {name!r})",
                        path=f"{other.name}.{name}",
                    )

    async def _expand(
        self,
        conn: Any,
        tenant: Tenant,
        app: CompiledApp,
        ent: CompiledEntity,
        name: str,
        items: list[dict[str, Any]],
        principal: Principal,
    ) -> None:
        target = app.entities[ent.references[name]]
        row_ast, per_row = self._list_access(principal, tenant, app.app_slug, target)
        readable, _ = self._access(principal, tenant, app.app_slug, target.name)
        ids = {i[name] for i in items if i.get(name)}
        if not ids:
            return
        stmt = sa.select(target.table).where(target.table.c.id.in_(ids))
        if row_ast is not None:  # a reference the caller may not read stays an id
            stmt = stmt.where(compile_filter(target, row_ast))
        full = [
            await self._open(tenant, target, records.to_record(target, r, None))
            for r in await conn.execute(stmt)
        ]  # decrypted before the policy sees them
        found = {
            rec["id"]: self._visible(rec, readable)
            for rec in full
            if not per_row or self._may_read(principal, tenant, app.app_slug, target.name, rec)
        }
        await self._present(principal, tenant, app.app_slug, target, list(found.values()))
        for item in items:
            if item.get(name) in found:
                item[name] = found[item[name]]

    # -- compliance seams (see governance.compliance.guard) ----------------------------------

    async def _seal(
        self, tenant: Tenant, ent: CompiledEntity, rows: list[dict[str, Any]], many: bool
    ) -> list[dict[str, Any]]:
        if self.guard is None:
            return rows
        return await self.guard.seal(tenant, ent.app, ent, rows, many)  # type: ignore[no-any-return]

    async def _open(
        self, tenant: Tenant, ent: CompiledEntity, record: dict[str, Any]
    ) -> dict[str, Any]:
        if self.guard is not None:
            await self.guard.open(tenant, ent.app, ent, [record])
        return record

    async def _present(
        self,
        principal: Principal,
        tenant: Tenant,
        app_slug: str,
        ent: CompiledEntity,
        shown: list[dict[str, Any]],
    ) -> None:
        if self.guard is not None:
            await self.guard.present(principal, tenant, app_slug, ent, shown)

    @staticmethod
    def _found(ent: CompiledEntity, row: Any, record_id: str) -> dict[str, Any]:
        if row is None:
            raise NotFound(f"No {ent.name} with id {record_id!r}", path="id")
        return records.to_record(ent, row)

    @staticmethod
    def _check_version(record: dict[str, Any], if_version: int | None) -> None:
        if if_version is not None and record["version"] != if_version:
            raise PreconditionFailed(
                f"The record is at version {record['version']}, you had {if_version}; "
                "reload it and retry",
                path="If-Match",
                extra={"current_version": record["version"]},
            )

    async def copy_of(
        self, tenant: Tenant, app_slug: str, ent: CompiledEntity, record: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """A record as it may be copied elsewhere (events, workflow variables and outputs):
        encrypted fields sealed, masked fields masked (`RecordGuard.protect`)."""
        if self.guard is None or record is None:
            return record
        return await self.guard.protect(tenant, app_slug, ent, record)

    async def copy_of_entity(
        self, tenant: Tenant, app_slug: str, entity: str, record: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """`copy_of` by entity name (for other layers: workflow steps)."""
        _, ent = await self.entity(tenant, app_slug, entity)
        return await self.copy_of(tenant, app_slug, ent, record)

    @staticmethod
    def _visible(record: dict[str, Any], readable: set[str] | None) -> dict[str, Any]:
        if readable is None:
            return record
        system = {"id", "version", "created_at", "updated_at", "created_by", "updated_by"}
        return {k: v for k, v in record.items() if k in system or k in readable}

    async def _event(
        self,
        topic: str,
        tenant: Tenant,
        app: CompiledApp,
        entity: str,
        record_id: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        by: str,
    ) -> Event:
        """The event of one write, with the record as it may be copied (`copy_of`)."""
        ent = app.entities[entity]
        before = await self.copy_of(tenant, app.app_slug, ent, before)
        after = await self.copy_of(tenant, app.app_slug, ent, after)
        return Event(
            topic,
            tenant.id,
            {
                "app": app.app_slug,
                "entity": entity,
                "id": record_id,
                "before": before,
                "after": after,
                "by": by,
                "version": app.version,
            },
        )

    async def _announce(
        self, db: Database, written: list[tuple[str, Event]], events: list[Event]
    ) -> None:
        """After commit: dispatch the write's outbox rows (audit entry, webhook deliveries,
        workflow starts), then tell this process's subscribers."""
        coherence.committed()  # from here on, the call must not run again
        await self.outbox.committed(db, written)
        for event in events:
            await self.events.publish(event)


def _shape(
    filter: dict[str, Any] | None,
    row_ast: dict[str, Any] | None,
    keys: list[tuple[Any, bool]],
    limit: int,
) -> Hashable | None:
    """What a list's statement is built from, as a key of `CompiledEntity.plans` (None: a
    value in the filter that cannot be part of a key; the statement is then built anew)."""
    try:
        key = (_frozen(filter), _frozen(row_ast), tuple((c.name, asc) for c, asc in keys), limit)
        hash(key)
    except TypeError:
        return None
    return key


def _frozen(value: Any) -> Hashable:
    # Each value with its type: 1, 1.0, True and "1" build different statements.
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _frozen(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("list", tuple(_frozen(v) for v in value))
    return (type(value).__name__, value)


def _cursor_value(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return {"t": value.isoformat()}
    if isinstance(value, types.Decimal):
        return {"d": str(value)}
    return value


def _from_cursor(col: Any, raw: Any) -> Any:
    if isinstance(raw, dict):
        if "t" in raw:
            import datetime as dt

            text = str(raw["t"])
            return (
                dt.datetime.fromisoformat(text)
                if "T" in text or " " in text
                else dt.date.fromisoformat(text)
            )
        if "d" in raw:
            return types.Decimal(str(raw["d"]))
    return raw


def _encode_cursor(key: bytes, aad: bytes, values: list[Any]) -> str:
    """An opaque cursor: the sort values of the last row, encrypted and authenticated (bound
    to the tenant, entity and sort), so it reveals nothing and cannot be forged."""
    plain = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(envelope.seal(key, plain, aad)).decode().rstrip("=")


def _decode_cursor(key: bytes, aad: bytes, cursor: str, n: int) -> list[Any]:
    try:
        blob = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4))
        values = json.loads(envelope.open_sealed(key, blob, aad))
    except (ValueError, TypeError, envelope.InvalidTag) as exc:
        raise BadRequest(
            "The cursor is not one this API handed out for this list and sort", path="cursor"
        ) from exc
    if not isinstance(values, list) or len(values) != n:
        raise BadRequest("The cursor belongs to a different sort", path="cursor")
    return values


def _conflict(ent: CompiledEntity, exc: IntegrityError) -> Conflict:
    """The 409 of a write refused by a unique index."""
    text = str(exc.orig)
    # PostgreSQL names the index, SQLite the table.column
    unique = [f for ix, f in ent.unique.items() if ix in text or f"{ent.table.name}.{f}" in text]
    path = unique[0] if unique else None
    return Conflict(
        "Another record already has this value"
        + (f" of {path!r}" if path else " of a unique field"),
        path=path,
    )


def _refers(ent: CompiledEntity, rows: list[dict[str, Any]]) -> bool:
    """Whether any row sets a reference (checked against its target in the write's
    transaction)."""
    return any(r.get(name) is not None for name in ent.references for r in rows)
