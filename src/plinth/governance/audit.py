"""The audit ledger: an append-only, keyed chain per tenant, with signed checkpoints.

Each event stores HMAC(ledger key, previous MAC + canonical event) (`chain`), the key derived
from the master key and never stored. Every batch of events also writes a signed checkpoint
(tenant, count, head) in the same transaction, and the latest checkpoints can be exported to an
anchor outside the database (`anchor`). `verify` checks every link, every MAC, every checkpoint
and every anchored checkpoint, so whoever holds the master key detects an edited, re-hashed,
reordered, forged or deleted event, a chain cut at its end, and (with an anchor) a chain rolled
back together with its checkpoints (the walk itself is `ledger_check`).

Appends take a per-tenant lock (PostgreSQL advisory xact lock; SQLite's BEGIN IMMEDIATE already
serialises writers), and a batch shares one transaction. Triggers refuse UPDATE, DELETE and (on
PostgreSQL) TRUNCATE, and the app's role does not own the tables (migration 0410).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth import envelope
from plinth.db import Database, Query, Steps, Write, contended, utcnow
from plinth.errors import Unavailable
from plinth.events import Event, EventBus
from plinth.governance.anchor import Anchor, AnchorUnreadable
from plinth.governance.chain import (
    GENESIS,
    Checkpoint,
    LedgerKey,
    canonical,
    event_body,
    iso,
)
from plinth.governance.ledger_check import VerifyReport, walk
from plinth.governance.store import audit_checkpoints, audit_events, audit_keys

log = logging.getLogger("plinth.audit")

PLATFORM_KEY = "_platform"
# An append the database was too busy to take is tried this many times in all, pausing
# 0.05 s, 0.1 s, 0.2 s … between tries (on SQLite each try already waits its busy timeout).
APPEND_ATTEMPTS = 4
APPEND_BACKOFF_SECONDS = 0.05
# Topics that land in the ledger; other layers' events join by pattern, unchanged.
# Record writes are audited through the outbox (`effect`), in step with the write; other
# changes write their entries in their own transaction (`Audit`, `recorded`) and publish
# their events marked `effects_done`. What the bus subscriber appends after the fact is left
# to observations: a connector called, a plugin call metered, a record read.
AUDITED_TOPICS = (
    "app.*",
    "draft.*",
    "policy.*",
    "plugin.*",
    "connector.*",
    "workflow.*",
    "task.*",
    "token.*",
    "auth.*",
    "compliance.*",
)


# The chain's head, and the prebuilt writes of an append (`AuditLedger.plan`).
_HEAD = Query(
    sa.select(audit_events.c.n, audit_events.c.hash)
    .where(audit_events.c.tenant_key == sa.bindparam("key"))
    .order_by(audit_events.c.n.desc())
    .limit(1)
)
# `inline`: no implicit RETURNING of `seq` (PostgreSQL), nothing is read back.
_EVENTS = Write(
    audit_events.insert().inline(),
    [
        "tenant_key",
        "n",
        "at",
        "actor",
        "action",
        "resource",
        "outcome",
        "data",
        "prev_hash",
        "hash",
        "key_id",
    ],
)
_CHECKPOINT = Write(
    audit_checkpoints.insert().inline(), ["tenant_key", "n", "head", "at", "key_id", "signature"]
)
# PostgreSQL: a tenant's appends take turns (`_lock_key`).
_LOCK = Write(sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("k", type_=sa.BigInteger))))


def _lock_key(key: str) -> int:
    return zlib.crc32(f"audit:{key}".encode()) - 2**31


def value_hash(value: Any) -> str | None:
    """Hash of a record's values: the ledger proves what changed without storing it."""
    if value is None:
        return None
    return hashlib.sha256(canonical(value)).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    actor: str | None
    action: str
    resource: str | None = None
    outcome: str = "ok"
    data: dict[str, Any] | None = None


class Unrecorded(Unavailable):
    """A change refused because the ledger could not take its entry in the same transaction."""

    code = "audit_unavailable"


@dataclass(frozen=True)
class Audit:
    """Who is making a change, and in which tenant's chain it is recorded.

    A service that makes an audited change calls `write` inside the change's own transaction,
    so a crash (or a ledger that refuses the entry) leaves both the change and its entry, or
    neither: never a token issued, a role granted, that the ledger does not show."""

    ledger: AuditLedger
    tenant_id: str | None
    actor: str | None

    async def write(
        self,
        conn: AsyncConnection,
        action: str,
        resource: str | None = None,
        outcome: str = "ok",
        **data: Any,
    ) -> None:
        """Append one entry in `conn`, the change's transaction (see `AuditLedger.write_now`)."""
        entry = AuditEntry(self.actor, action, resource, outcome, data)
        await self.ledger.write_now(conn, self.tenant_id, [entry])

    def as_actor(self, actor: str | None) -> Audit:
        """The same chain, another actor (a person acting on their own record)."""
        return replace(self, actor=actor)


class AuditLedger:
    def __init__(
        self, db: Database, master: Callable[[], bytes], anchor: Anchor | None = None
    ) -> None:
        self.db = db
        self._master = master
        self.anchor = anchor
        self._key: tuple[bytes, LedgerKey] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._queues: dict[str, list[tuple[AuditEntry, asyncio.Future[None]]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._anchored: dict[str, int] = {}  # tenant key -> count last exported
        # Waits for this process's committed record writes to be dispatched (their entries
        # are appended off the request path): set by the composition root to the outbox's.
        self.settle: Callable[[], Awaitable[None]] = _settled

    # -- keys -------------------------------------------------------------------------------

    def key(self) -> LedgerKey:
        """The current ledger key (derived from the master key; cached per master key)."""
        master = self._master()
        if self._key is None or self._key[0] != master:
            self._key = (master, LedgerKey.from_master(master))
        return self._key[1]

    async def keys(self) -> dict[str, LedgerKey]:
        """Every ledger key events may carry: the current one and those of earlier masters."""
        current = self.key()
        found = {current.id: current}
        async with self.db.read() as conn:
            for row in await conn.execute(sa.select(audit_keys)):
                try:
                    root = envelope.open_sealed(self._master(), row.wrapped, _key_aad(row.key_id))
                except envelope.InvalidTag:
                    continue  # not ours: an event naming it fails as made with an unknown key
                found[row.key_id] = LedgerKey(root)
        return found

    async def rewrap_master(self, conn: AsyncConnection, old: bytes, new: bytes) -> int:
        """Keep the ledger key of `old` (sealed by `new`) so history signed with it verifies;
        re-seal the keys of earlier masters. Runs in the vault's master rotation."""
        moved = 0
        for row in (await conn.execute(sa.select(audit_keys))).all():
            root = envelope.open_sealed(old, row.wrapped, _key_aad(row.key_id))
            await conn.execute(
                audit_keys.update()
                .where(audit_keys.c.key_id == row.key_id)
                .values(wrapped=envelope.seal(new, root, _key_aad(row.key_id)))
            )
            moved += 1
        retired = LedgerKey.from_master(old)
        exists = (
            await conn.execute(
                sa.select(audit_keys.c.key_id).where(audit_keys.c.key_id == retired.id)
            )
        ).first()
        if exists is None:
            await conn.execute(
                audit_keys.insert().values(
                    key_id=retired.id,
                    wrapped=envelope.seal(new, retired.root, _key_aad(retired.id)),
                    created_at=utcnow(),
                )
            )
            moved += 1
        return moved

    # -- appending --------------------------------------------------------------------------

    async def append(self, tenant_id: str | None, entry: AuditEntry) -> None:
        """Append one event; returns once it is committed.

        Group commit: appends that arrive while the tenant's previous batch is being written
        wait for it, then go in together in one transaction (in arrival order). A batch that
        fails fails each of its appends, which each raise it. The append writing a batch, if
        cancelled meanwhile (its request's client gone), still waits until the batch is over
        and only then sees its cancellation: the others' appends in it are not its to lose.
        """
        key = tenant_id or PLATFORM_KEY
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, []).append((entry, done))
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            batch = self._queues.pop(key, [])
            if batch:
                writing = asyncio.ensure_future(self._append_batch(tenant_id, batch))
                try:
                    await asyncio.shield(writing)
                except asyncio.CancelledError:
                    while not writing.done():
                        with contextlib.suppress(asyncio.CancelledError):
                            await asyncio.wait([writing])
                    if not writing.cancelled():
                        writing.exception()  # logged by `append_many`; this caller was cancelled
                    raise
        await done

    async def _append_batch(
        self, tenant_id: str | None, batch: list[tuple[AuditEntry, asyncio.Future[None]]]
    ) -> None:
        """Write a batch of `append` and settle each of its appends (`_fail` on an error)."""
        try:
            await self.append_many(tenant_id, [e for e, _ in batch])
        except BaseException as exc:
            for _, fut in batch:
                _fail(fut, exc)
            raise
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    async def append_many(self, tenant_id: str | None, entries: list[AuditEntry]) -> None:
        """Append a batch in one transaction under the tenant's lock.

        A database too busy to take it (SQLite still locked after its busy timeout, a
        PostgreSQL deadlock) is tried again, a few times with a growing pause: these appends
        record changes already committed, so giving up loses them. What still fails is logged
        with the actions it loses, and raised."""
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            try:
                async with self.db.transaction() as conn:
                    await self.write(conn, tenant_id, entries)
                return
            except Exception as exc:
                if attempt == APPEND_ATTEMPTS or not contended(exc):
                    log.error(
                        "audit entries of %s not appended (%s): %s",
                        tenant_id or PLATFORM_KEY,
                        ", ".join(e.action for e in entries),
                        exc,
                    )
                    raise
            await asyncio.sleep(APPEND_BACKOFF_SECONDS * 2 ** (attempt - 1))

    async def write(
        self, conn: AsyncConnection, tenant_id: str | None, entries: list[AuditEntry]
    ) -> None:
        """Append a batch inside the caller's transaction (the change it records commits with
        it, or neither does), with the checkpoint of the new head."""
        if not entries:
            return
        key = tenant_id or PLATFORM_KEY
        ledger = self.key()
        await self._lock(conn, key)
        last = (await conn.execute(_HEAD.stmt, {"key": key})).mappings().first()
        rows, checkpoint = self._chain(ledger, key, entries, last)
        await conn.execute(audit_events.insert(), rows)
        await conn.execute(audit_checkpoints.insert().values(**checkpoint))

    async def write_now(
        self, conn: AsyncConnection, tenant_id: str | None, entries: list[AuditEntry]
    ) -> None:
        """`write` for a change a person is making: the ledger failing to take its entries
        fails the change (`Unrecorded`, its transaction rolls back), so no change it should
        show is committed without them."""
        try:
            await self.write(conn, tenant_id, entries)
        except Exception as exc:
            log.error(  # the driver's error: the statement's parameters are the entries' data
                "audit entries of %s not written, their change refused (%s): %s",
                tenant_id or PLATFORM_KEY,
                ", ".join(e.action for e in entries),
                getattr(exc, "orig", None) or exc,
            )
            raise Unrecorded(
                "The audit ledger could not record this change, so it was not made; try again"
            ) from exc

    async def recorded(
        self, conn: AsyncConnection, tenant_id: str, events: Sequence[Event]
    ) -> list[Event]:
        """The effect (`events.take_effects`) of changes a person makes: their events'
        entries in the change's transaction, refusing the change should the ledger not take
        them (`write_now`)."""
        await self.write_now(conn, tenant_id or None, [self.entry(e) for e in events])
        return []

    def by(self, tenant_id: str | None, actor: str | None) -> Audit:
        """The entries `actor` makes in `tenant_id`'s chain, written by the changes themselves
        (`Audit.write`, in each change's transaction)."""
        return Audit(self, tenant_id, actor)

    async def plan(self, tenant_id: str, events: Sequence[Event]) -> Steps:
        """The audit effect as prebuilt writes (`outbox.Plan`): the entries chained from the
        head read now. Should the chain grow before they commit, their first position is
        taken (unique per tenant) and the write fails; the outbox then runs `effect`."""
        key = tenant_id or PLATFORM_KEY
        found = await self.db.fetch(_HEAD, {"key": key})
        rows, checkpoint = self._chain(
            self.key(), key, [self.entry(e) for e in events], found[0] if found else None
        )
        steps: Steps = [(_EVENTS, rows), (_CHECKPOINT, [checkpoint])]
        if self.db.dialect == "postgresql":
            # The tenant's lock, as `write` takes it: a writer waiting for it meanwhile reads
            # the head these entries make (one that read it before fails on the position).
            steps.insert(0, (_LOCK, [{"k": _lock_key(key)}]))
        return steps

    @staticmethod
    def _chain(
        ledger: LedgerKey, key: str, entries: Sequence[AuditEntry], last: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The rows of `entries` chained after `last` (the head's n and hash, or None), and
        the signed checkpoint of the new head."""
        n, prev = (last["n"], last["hash"]) if last else (0, GENESIS)
        rows = []
        for e in entries:
            n += 1
            at = utcnow()
            data = e.data or {}
            body = event_body(ledger.id, key, n, at, e.actor, e.action, e.resource, e.outcome, data)
            digest = ledger.mac(prev, body)
            rows.append(
                dict(
                    tenant_key=key,
                    n=n,
                    at=at,
                    actor=e.actor,
                    action=e.action,
                    resource=e.resource,
                    outcome=e.outcome,
                    data=data,
                    prev_hash=prev,
                    hash=digest,
                    key_id=ledger.id,
                )
            )
            prev = digest
        return rows, AuditLedger._signed(ledger, key, n, prev)

    @staticmethod
    def _signed(ledger: LedgerKey, key: str, n: int, head: str) -> dict[str, Any]:
        cp = Checkpoint(key, n, head, iso(utcnow()), ledger.id)
        signed = Checkpoint(cp.tenant_key, cp.n, cp.head, cp.at, cp.key_id, ledger.sign(cp))
        return signed.as_dict()

    async def _checkpoint(
        self, conn: AsyncConnection, ledger: LedgerKey, key: str, n: int, head: str
    ) -> None:
        await conn.execute(audit_checkpoints.insert().values(**self._signed(ledger, key, n, head)))

    async def seal_legacy(self) -> int:
        """Checkpoint the head of every chain that has none yet (ledgers written before the
        keyed chain): from now on their history cannot be rewritten unseen. Returns how many."""
        async with self.db.read() as conn:
            heads = (
                await conn.execute(
                    sa.select(audit_events.c.tenant_key, sa.func.max(audit_events.c.n))
                    .where(
                        ~sa.exists().where(
                            audit_checkpoints.c.tenant_key == audit_events.c.tenant_key
                        )
                    )
                    .group_by(audit_events.c.tenant_key)
                )
            ).all()
        for tenant_key, _ in heads:
            async with self.db.transaction() as conn:
                await self._lock(conn, tenant_key)
                last = (
                    await conn.execute(
                        sa.select(audit_events.c.n, audit_events.c.hash)
                        .where(audit_events.c.tenant_key == tenant_key)
                        .order_by(audit_events.c.n.desc())
                        .limit(1)
                    )
                ).first()
                covered = (
                    await conn.execute(
                        sa.select(audit_checkpoints.c.n)
                        .where(audit_checkpoints.c.tenant_key == tenant_key)
                        .limit(1)
                    )
                ).first()
                if last is not None and covered is None:
                    await self._checkpoint(conn, self.key(), tenant_key, last.n, last.hash)
        return len(heads)

    async def _lock(self, conn: AsyncConnection, key: str) -> None:
        if self.db.dialect == "postgresql":
            # Per-tenant: writers of different tenants never wait on each other.
            await conn.execute(_LOCK.stmt, {"k": _lock_key(key)})

    def append_soon(self, tenant_id: str | None, entry: AuditEntry) -> None:
        """Append from sync code (denials): scheduled on the running loop, awaited by drain."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.append(tenant_id, entry))
        self._pending.add(task)
        task.add_done_callback(self._settle_soon)

    def _settle_soon(self, task: asyncio.Task[Any]) -> None:
        """A scheduled append is over: a failure was logged by `append_many`; taken here so
        asyncio does not report it again as never retrieved."""
        self._pending.discard(task)
        if not task.cancelled():
            task.exception()

    async def drain(self) -> None:
        """Wait for scheduled appends (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # -- events -----------------------------------------------------------------------------

    def subscribe(self, events: EventBus) -> None:
        """Record every audited topic published on the bus."""
        for pattern in AUDITED_TOPICS:
            events.subscribe(pattern, self._on_event)

    async def _on_event(self, event: Event) -> None:
        if not event.effects_done:  # else its entry committed with its change (`effect`)
            await self.append(event.tenant_id, self.entry(event))

    async def effect(
        self, conn: AsyncConnection, tenant_id: str, events: Sequence[Event]
    ) -> list[Event]:
        """The outbox's audit effect: the entries of a change, in the dispatch transaction."""
        await self.write(conn, tenant_id or None, [self.entry(e) for e in events])
        return []

    @staticmethod
    def entry(event: Event) -> AuditEntry:
        """What the ledger keeps of an event."""
        data = dict(event.data)
        # Data writes: who and what, with hashes of before/after, never the values.
        for side in ("before", "after", "record", "values"):
            if side in data:
                data[f"{side}_sha256"] = value_hash(data.pop(side))
        actor = data.get("by") or data.get("actor")
        resource = "/".join(str(data[k]) for k in ("app", "entity", "id") if data.get(k))
        return AuditEntry(
            actor=str(actor) if actor else None,
            action=event.topic,
            resource=resource or None,
            data=data,
        )

    # -- reading ----------------------------------------------------------------------------

    async def list(
        self,
        tenant_id: str | None,
        *,
        actor: str | None = None,
        action: str | None = None,
        resource: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = 0,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Events of a tenant in chain order, filtered, starting after cursor `after`
        (`newest_first`: in reverse, starting before `after`, or at the newest when 0).

        `action` and `resource` match exactly, or as a prefix with a trailing `*`; an action
        ending in `.` (`user.`) is the prefix of a family."""
        await self.settle()
        q = sa.select(audit_events).where(audit_events.c.tenant_key == (tenant_id or PLATFORM_KEY))
        if newest_first:
            q = q.where(audit_events.c.n < after) if after else q
        else:
            q = q.where(audit_events.c.n > after)
        if actor:
            q = q.where(audit_events.c.actor == actor)
        if action:
            q = q.where(
                _pattern(audit_events.c.action, action + ("*" if action.endswith(".") else ""))
            )
        if resource:
            q = q.where(_pattern(audit_events.c.resource, resource))
        if since:
            q = q.where(audit_events.c.at >= since)
        if until:
            q = q.where(audit_events.c.at < until)
        order = audit_events.c.n.desc() if newest_first else audit_events.c.n
        q = q.order_by(order).limit(limit)
        async with self.db.read() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [_public(r) for r in rows]

    async def verify(
        self, tenant_id: str | None, *, anchor: Anchor | None = None, batch: int = 5000
    ) -> VerifyReport:
        """Walk the chain in one snapshot: every link, MAC, checkpoint and anchored checkpoint.
        Reports the first event where one does not hold."""
        await self.settle()
        key = tenant_id or PLATFORM_KEY
        anchor = anchor or self.anchor
        anchored: dict[int, list[Checkpoint]] = {}
        if anchor is not None:
            try:
                for cp in await anchor.read(key):
                    anchored.setdefault(cp.n, []).append(cp)
            except AnchorUnreadable as exc:
                return VerifyReport(False, 0, None, f"the anchor could not be read: {exc}")
        keys = await self.keys()
        async with self.db.read(snapshot=True) as conn:
            return await walk(conn, key, keys, anchored, batch)

    # -- anchoring --------------------------------------------------------------------------

    async def latest_checkpoints(self) -> tuple[Checkpoint, ...]:
        """The newest checkpoint of every chain."""
        t = audit_checkpoints
        newest = (
            sa.select(t.c.tenant_key, sa.func.max(t.c.n).label("n")).group_by(t.c.tenant_key)
        ).subquery()
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(t).join(
                        newest, sa.and_(t.c.tenant_key == newest.c.tenant_key, t.c.n == newest.c.n)
                    )
                )
            ).all()
        return tuple(
            Checkpoint(r.tenant_key, r.n, r.head, r.at, r.key_id, r.signature) for r in rows
        )

    async def export_anchor(self, anchor: Anchor | None = None) -> int:
        """Send every chain's newest checkpoint the anchor has not had yet. Returns how many."""
        target = anchor or self.anchor
        if target is None:
            return 0
        fresh = [
            cp
            for cp in await self.latest_checkpoints()
            if self._anchored.get(cp.tenant_key) != cp.n
        ]
        if fresh:
            keys = await self.keys()
            await target.publish(fresh, {k: v.public_key for k, v in keys.items()})
            for cp in fresh:
                self._anchored[cp.tenant_key] = cp.n
        return len(fresh)

    async def anchor_every(self, seconds: float) -> None:
        """Export to the anchor forever, every `seconds` (a task the worker runs)."""
        while True:
            try:
                await self.export_anchor()
            except Exception as exc:  # an unreachable anchor must not stop the worker
                log.warning("audit anchor export failed: %s", exc)
            await asyncio.sleep(seconds)


async def _settled() -> None:
    return None


def _fail(fut: asyncio.Future[None], exc: BaseException) -> None:
    """End an append of a failed batch with its error (a cancellation cancels it), taken at
    once: the append that wrote the batch raises it itself, and one whose caller gave up
    meanwhile must not leave asyncio a future "never retrieved"."""
    if fut.done():
        return
    if isinstance(exc, Exception):
        fut.set_exception(exc)
        fut.exception()
    else:
        fut.cancel()


def _key_aad(key_id: str) -> bytes:
    return f"audit-ledger-key\x00{key_id}".encode()


def _public(row: Any) -> dict[str, Any]:
    return {
        "n": row["n"],
        "at": iso(row["at"]),
        "actor": row["actor"],
        "action": row["action"],
        "resource": row["resource"],
        "outcome": row["outcome"],
        "data": row["data"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
        "key_id": row["key_id"],
    }


def _pattern(column: Any, value: str) -> Any:
    """`value` exactly, or as a pattern where `*` stands for anything (and only `*`)."""
    if "*" not in value:
        return column == value
    plain = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(plain.replace("*", "%"), escape="\\")
