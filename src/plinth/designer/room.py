"""Draft rooms: one CRDT document per app draft, its editors, its log, its validation.

Order of an accepted update: checks (role, size, rate) → apply to the room's doc (a malformed
update fails here and closes only its connection) → fan-out: the updates accepted since the
last fan-out, merged into one and encoded once, are written to every connection of the room
(at the next turn of the event loop; a room whose fan-outs take more than
`Limits.fan_out_share` of the CPU waits up to `Limits.fan_out_max_seconds` so that what arrives
meanwhile goes out as one message per socket) → and, off that path, the
room's flusher lets updates gather for `Limits.flush_linger_seconds`, appends them to the log
in one transaction (those arriving while a batch commits form the next: group commit), then
relays the batch to other nodes and acknowledges it to its senders. Validation runs when the
room settles, not per update (the doc's observers only mark what an update touched). The log
is compacted into a snapshot from the database itself (never from a background store), so a
restart loses nothing.

**Acknowledgement.** Once the batch holding a connection's updates is committed, the server
sends that connection a sync step 2 message with an empty update (stock y-websocket clients
apply it as the no-op it is): everything the connection sent before it is in the log and
survives a kill (tests/designer/test_kill.py). Editors in the room see an update before it is
logged (at the latency of the fan-out, not of a commit); a kill between the two loses only
updates never acknowledged, which their senders still hold and send again when they
reconnect (Yjs resends what the server's state vector lacks). Other nodes get an update only
after it is logged.

Fan-out never waits on a client (connection.py): a socket that cannot take a message now
gets a queue and a task of its own; one that falls `Limits.max_send_queue_bytes` behind is
closed (it resyncs on reconnect).

The log is the draft's truth; the REST draft is derived from it. A room settles (writes the
merged draft to REST, with how far into the log it reflects, in one transaction) 0.25 s after
the last update, and also before any read of the REST draft that finds the log ahead of it
(`DesignerService.settle`, which the metadata service calls), so a kill at any moment after an
update was logged loses nothing. REST writes go through the room (`DesignerService.write`):
applied to the document and logged first, then settled, so the two never diverge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import timedelta
from functools import partial
from typing import Any, Protocol

from pycrdt import Doc, Map, merge_updates
from sqlalchemy.exc import IntegrityError

from plinth.db import Database, utcnow
from plinth.designer import protocol as p
from plinth.designer import shape, store
from plinth.designer.connection import Connection, Limits
from plinth.designer.validation import LiveValidator
from plinth.errors import PlinthError, PreconditionFailed
from plinth.metadata import definition as definitions
from plinth.metadata.models import Draft
from plinth.metadata.service import AlsoWrite, Change, MetadataService
from plinth.tenancy.models import Tenant

log = logging.getLogger("plinth.designer")


class Host(Protocol):
    """What a room asks of the service that keeps it (`service.DesignerService`)."""

    db: Database
    limits: Limits
    metadata: MetadataService

    @property
    def relaying(self) -> bool: ...

    async def relay(self, room: Room, kind: str, payload: bytes) -> None: ...

    def spawn(self, coro: Any) -> asyncio.Task[Any]: ...


class Room:
    """The live document of one app draft on this node."""

    def __init__(self, service: Host, tenant: Tenant, slug: str, app_id: str) -> None:
        self.service = service
        self.tenant = tenant
        self.slug = slug
        self.app_id = app_id
        self.doc: Doc[Any] = Doc()
        self.conns: set[Connection] = set()
        self.presence: dict[int, tuple[p.PresenceEntry, Connection | None]] = {}
        self.settling = asyncio.Lock()  # one settle or REST write of this room at a time
        self.size = 0
        self.since_compact = 0
        self.last_id = 0
        self.draft_revision = 0
        self.written: set[str] = set()
        self.diagnostics: list[dict[str, Any]] = []
        # CPU debt of people who left, so reconnecting does not reset one's budget
        self.cpu_debts: dict[str, tuple[float, float]] = {}
        self.last_author = "system"
        self.server_client_id = random.getrandbits(52)
        self.server_clock = 0
        self.idle_since: float | None = time.monotonic()
        self._settle: asyncio.TimerHandle | None = None
        self._paths: list[str] = []
        # accepted updates not yet in the log: (update, author, summary, sender)
        self._pending: list[tuple[bytes, str, list[str], Connection | None]] = []
        self._flusher: asyncio.Task[None] | None = None
        # accepted updates not yet fanned out to the room: (update, sender)
        self._outbox: list[tuple[bytes, Connection | None]] = []
        self._presence_out: dict[int, p.PresenceEntry] = {}  # presence not yet fanned out
        self._fan_out_due = False
        self._fanned_at = 0.0  # the event loop's time of the last fan-out
        # CPU seconds of fan-out not yet paid back (see `_schedule_fan_out`)
        self._fan_out_debt = 0.0
        self._flush_now = asyncio.Event()  # someone waits for the log: no lingering
        self.validator = LiveValidator()
        self.validate_seconds = 0.0  # the last validation's duration (bench, logs)
        self._subs = self.validator.watch(self.doc) + [
            self.doc.get(root, type=Map).observe_deep(partial(self._observe, root))
            for root in shape.ROOTS
        ]

    def _observe(self, root: str, events: Any, *_: Any) -> None:
        """Note the paths an update changed, for the history."""
        for ev in events:
            path = [str(x) for x in ev.path]
            keys = [str(k) for k in ev.keys]
            base = ".".join(path if root == shape.ENTITIES else [root, *path])
            for key in keys[:20]:
                self._paths.append(f"{base}.{key}" if base else key)

    # -- loading ------------------------------------------------------------------------------

    async def load(self) -> None:
        """Snapshot + the log after it; a room never seen before starts from the REST draft."""
        db = self.service.db
        async with db.read() as conn:
            # The snapshot's meta first: on PostgreSQL (read committed) each statement sees
            # its own moment, and a seed committed between the two reads must not look like
            # "seeded, but no snapshot" (an empty room). Read in this order, a seed that lands
            # in between is seen by the second read, or found again by `seed_snapshot`.
            meta = await store.snapshot_meta(conn, self.app_id)
            snap, rows = await store.load(conn, self.app_id)
        # Fold the log into an unobserved doc, then apply it to the room's doc at once: the
        # observers (history paths, live validation) would otherwise run once per logged row.
        folded: Doc[Any] = Doc()
        if snap is not None:
            folded.apply_update(snap)
            self.size += len(snap)
        for ident, data in rows:
            folded.apply_update(data)
            self.size += len(data)
            self.last_id = ident
        if snap is not None or rows:
            self.doc.apply_update(folded.get_update())
        self.since_compact = len(rows)
        self.draft_revision = meta[1] if meta else 0
        if meta is None:
            # First open anywhere: seed from the REST draft. Two nodes may race here; the
            # snapshot row's primary key picks one seed and the loser loads the winner's,
            # since two independent seeds would merge into conflicting copies of each entity.
            seed: Doc[Any] = Doc()
            draft = await self.service.metadata.get_draft(self.tenant, self.slug)
            shape.apply_definition(seed, draft.definition)
            data = seed.get_update()
            try:
                async with db.transaction() as conn:
                    seeded = await store.seed_snapshot(
                        conn, self.tenant.id, self.app_id, data, utcnow(), draft.revision
                    )
            except IntegrityError:
                seeded = False
            if not seeded:
                await self.load()
                return
            self.doc.apply_update(data)
            self.draft_revision = draft.revision
            self.size = len(data)
        self._paths.clear()
        if shape.needs_migration(self.doc):  # pages/workflows/policies were JSON text once
            definition, _ = shape.to_definition(self.doc)
            before = self.doc.get_state()
            shape.apply_definition(self.doc, definition, origin="migrate")
            await self._log_local(self.doc.get_update(before), "system")
        await self.sync_from_draft()
        self._validate()

    # -- accepting updates --------------------------------------------------------------------

    async def accept(self, conn: Connection | None, update: bytes, author: str) -> bool:
        """Apply one update and queue it for the log; False if it changed nothing.

        The room gets it at the next fan-out (merged with what else arrived meanwhile); the
        log and the sender's acknowledgement follow with its batch (see the module's
        docstring). Nothing here waits: every change to the room's doc is made in one step of
        the event loop, so no lock is needed around it.
        """
        before = self.doc.get_state()
        self._paths.clear()
        started = time.thread_time()  # CPU of this thread: what the update cost the room
        try:
            self.doc.apply_update(update)  # raises on a malformed update
        finally:
            if conn is not None:
                conn.cpu_debt += time.thread_time() - started
        if not self._paths and self.doc.get_state() == before:
            return False
        summary = sorted(set(self._paths))[:50] if len(self._paths) > 1 else self._paths[:]
        self._paths.clear()
        self._pending.append((update, author, summary, conn))
        self.size += len(update)
        self.last_author = author
        self._outbox.append((update, conn))
        self._schedule_fan_out()
        if self._flusher is None or self._flusher.done():
            self._flusher = self.service.spawn(self._flush_loop())
        return True

    def _schedule_fan_out(self) -> None:
        """Fan out at the next turn of the event loop, unless the room's fan-outs have taken
        more than `Limits.fan_out_share` of the time (beyond a burst of
        `Limits.fan_out_burst_seconds`): it then waits until they have not, so a big room's
        sockets get what arrived meanwhile as one message each instead of one per update.

        The cost counted is the fan-out's CPU time, not its wall time: on a busy machine a
        fan-out preempted midway would otherwise make the room wait for other processes' work.
        """
        if self._fan_out_due:
            return
        self._fan_out_due = True
        loop = asyncio.get_running_loop()
        limits = self.service.limits
        over = self._debt(loop.time()) - limits.fan_out_burst_seconds
        if over <= 0:
            loop.call_soon(self._fan_out)
        else:
            loop.call_later(
                min(limits.fan_out_max_seconds, over / limits.fan_out_share), self._fan_out
            )

    def _debt(self, now: float) -> float:
        """Fan-out CPU time not yet paid back: each fan-out adds its cost, and the room pays
        it back at `Limits.fan_out_share` of the time passing."""
        paid = (now - self._fanned_at) * self.service.limits.fan_out_share
        return max(0.0, self._fan_out_debt - paid)

    def _fan_out(self) -> None:
        """Send what the room gained since the last fan-out: the updates accepted, merged into
        one update, and the presence changes, as one awareness message; each encoded once."""
        self._fan_out_due = False
        started = time.thread_time()
        batch, self._outbox = self._outbox, []
        if batch:
            updates = [update for update, _ in batch]
            merged = updates[0] if len(updates) == 1 else merge_updates(*updates)
            sender = batch[0][1]
            if any(conn is not sender for _, conn in batch):
                # Several senders get the batch back whole (applying one's own update again
                # changes nothing, and one message for all beats one per sender).
                sender = None
            self._send_all(p.sync_message(p.UPDATE, merged), sender)
        if self._presence_out:
            entries = list(self._presence_out.values())
            self._presence_out.clear()
            self._send_all(p.awareness_message(p.encode_awareness(entries)), None)
        now = asyncio.get_running_loop().time()
        self._fan_out_debt = self._debt(now) + time.thread_time() - started
        self._fanned_at = now

    def _announce(self, entries: list[p.PresenceEntry]) -> None:
        """Presence changes go out with the next fan-out (a client's latest state wins)."""
        for entry in entries:
            self._presence_out[entry.client_id] = entry
        self._schedule_fan_out()

    async def _flush_loop(self) -> None:
        """Log the accepted updates a batch at a time; then relay each batch to other nodes
        and acknowledge it to its senders."""
        limits = self.service.limits
        delay = 0.05
        while self._pending:
            if not self._flush_now.is_set():  # let a batch gather (`flush` cuts this short)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush_now.wait(), limits.flush_linger_seconds)
            batch = self._pending[: limits.batch_max]
            del self._pending[: len(batch)]
            try:
                async with self.service.db.transaction() as db:
                    last = await store.append_many(
                        db,
                        self.tenant.id,
                        self.app_id,
                        [(update, author, summary) for update, author, summary, _ in batch],
                        utcnow(),
                    )
            except Exception:
                # Keep them first in line (their senders were not acknowledged) and retry.
                log.warning("designer log write failed; retrying", exc_info=True)
                self._pending[:0] = batch
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            self.last_id = max(self.last_id, last)
            self.since_compact += len(batch)
            for sender in {entry[3] for entry in batch}:
                if sender is not None:
                    sender.acknowledge()
            if self.service.relaying:
                updates = [entry[0] for entry in batch]
                merged = updates[0] if len(updates) == 1 else merge_updates(*updates)
                await self.service.relay(self, "update", merged)
            self._schedule_settle()
            if self.since_compact >= limits.compact_every:
                self.service.spawn(self.compact())
        self._flush_now.clear()

    async def flush(self) -> None:
        """Wait until every update accepted so far is in the log."""
        while self._flusher is not None and not self._flusher.done():
            self._flush_now.set()
            await asyncio.shield(self._flusher)

    async def apply_remote(self, update: bytes) -> None:
        """An update another node already logged: apply and pass on, no logging."""
        before = self.doc.get_state()
        self.doc.apply_update(update)
        self._paths.clear()
        if self.doc.get_state() == before:
            return
        await self.broadcast(p.sync_message(p.UPDATE, update))
        self._schedule_settle()

    async def catch_up(self) -> None:
        """Apply log rows other nodes wrote that relaying missed."""
        async with self.service.db.read() as db:
            rows = await store.since(db, self.app_id, self.last_id)
        for ident, data in rows:
            await self.apply_remote(data)
            self.last_id = max(self.last_id, ident)

    async def broadcast(self, message: bytes, exclude: Connection | None = None) -> None:
        """Queue to every connection of the room on this node (never waits for a socket)."""
        self._send_all(message, exclude)

    def _send_all(self, message: bytes, exclude: Connection | None) -> None:
        for conn in list(self.conns):
            if conn is not exclude:
                conn.push(message)

    # -- REST <-> CRDT ------------------------------------------------------------------------

    def _schedule_settle(self) -> None:
        if self._settle is not None:
            self._settle.cancel()
        loop = asyncio.get_running_loop()
        self._settle = loop.call_later(
            self.service.limits.settle_seconds, lambda: self.service.spawn(self.settle())
        )

    async def settle(self) -> Draft | None:
        """Validate the merged draft, tell the room, and write it to the REST draft if valid."""
        async with self.settling:
            return await self._settle_now()

    async def _settle_now(self) -> Draft | None:
        await self.flush()  # the REST draft never holds an update the log does not
        await self.catch_up()  # what other nodes logged is part of the truth too
        upto = self.last_id
        definition = self._validate()
        await self.broadcast_server_state()
        if self.diagnostics:
            return None
        return await self._write_rest(definition, self.last_author, upto)

    async def _write_rest(
        self,
        definition: dict[str, Any],
        by: str | None,
        upto: int,
        *,
        raising: bool = False,
        also: AlsoWrite | None = None,
    ) -> Draft | None:
        """Make the REST draft `definition`, recording in the same transaction that it reflects
        the log up to update `upto`. Not written (None), or with `raising` its error raised: a
        REST write answers why (the ledger refusing its `draft.updated`: 503), not a 500."""
        metadata = self.service.metadata
        digest = definitions.content_hash(definition)
        current = await metadata.get_draft(self.tenant, self.slug, settle=False)
        if definitions.content_hash(current.definition) == digest:
            async with self.service.db.transaction() as db:
                await store.set_settled(
                    db, self.app_id, upto, max(self.draft_revision, current.revision)
                )
            self.draft_revision = max(self.draft_revision, current.revision)
            return current
        if len(self.written) > 64:  # only recent writes can still come back as events
            self.written.clear()
        self.written.add(digest)

        async def settled(db: Any, draft: Draft) -> None:
            await store.set_settled(db, self.app_id, upto, draft.revision)
            if also is not None:  # the REST write's own (`Room.write`)
                await also(db, draft)

        try:
            draft = await metadata.put_draft(
                self.tenant, self.slug, definition, by=by, through_log=False, also=settled
            )
        except PlinthError as exc:
            if raising:
                raise
            log.info("draft of %s not written: %s", self.slug, exc)
            return None
        self.draft_revision = max(self.draft_revision, draft.revision)
        return draft

    async def write(
        self,
        change: Change,
        by: str | None,
        if_revision: int | None,
        also: AlsoWrite | None = None,
    ) -> Draft:
        """A REST write of the draft: settled first (so `if_revision` and the base are the
        document's), applied to the document and logged, then settled again."""
        async with self.settling:
            await self.flush()
            async with self.service.db.read() as db:
                state = await store.settle_state(db, self.app_id)
            edited = state is not None and state[0] > state[1]  # logged, not yet in the draft
            seen = await self.service.metadata.get_draft(self.tenant, self.slug, settle=False)
            await self._settle_now()
            rest = await self.service.metadata.get_draft(self.tenant, self.slug, settle=False)
            # A settle that carried no one's edit only wrote the document's own form of the
            # same draft (stable ids, normal order): the caller's revision is still current.
            current = {rest.revision} if edited else {rest.revision, seen.revision}
            if if_revision is not None and if_revision not in current:
                raise PreconditionFailed(
                    f"The draft changed (revision {rest.revision}, you had {if_revision}); "
                    "reload it and apply your change again",
                    path="draft",
                )
            base, _ = shape.to_definition(self.doc)
            body = definitions.check(change(base), "draft")
            body = definitions.assign_ids(body, base)
            before = self.doc.get_state()
            self._paths.clear()
            shape.apply_definition(self.doc, body, origin="rest")
            update = self.doc.get_update(before)
            if update != p.EMPTY_UPDATE:
                await self._log_local(update, by or "rest")  # in the log before anywhere else
            self._validate()
            await self.broadcast_server_state()
            # Logged already, it reaches the REST draft at the next settle should this fail.
            draft = await self._write_rest(body, by, self.last_id, raising=True, also=also)
            assert draft is not None  # `body` passed the same checks put_draft makes
            return draft

    def _validate(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            definition, faults = self.validator.run(self.doc)
        except Exception:  # a shape no editor makes: validate it whole next time
            self.validator.touch_all()
            raise
        self.validate_seconds = time.perf_counter() - start
        self.diagnostics = [
            {"path": f.path, "message": f.message, "code": f.code} for f in faults[:200]
        ]
        return definition

    async def sync_from_draft(self) -> None:
        """Bring a REST draft written outside the log (a rollback that resets the draft, a
        write made before the draft was ever co-edited) into the document. A draft some room
        wrote from the log is never applied back over the document: it can only be behind it."""
        draft = await self.service.metadata.get_draft(self.tenant, self.slug, settle=False)
        if draft.revision <= self.draft_revision:
            return
        async with self.service.db.read() as db:
            meta = await store.snapshot_meta(db, self.app_id)
        if meta is not None and draft.revision <= meta[1]:  # written from the log
            self.draft_revision = draft.revision
            await self.catch_up()
            return
        self.draft_revision = draft.revision
        digest = definitions.content_hash(draft.definition)
        if digest in self.written:
            await self._save_revision()
            return
        current, _ = shape.to_definition(self.doc)
        if definitions.content_hash(current) != digest:
            before = self.doc.get_state()
            shape.apply_definition(self.doc, draft.definition, origin="rest")
            update = self.doc.get_update(before)
            if update != p.EMPTY_UPDATE:  # key order alone differs: nothing to log
                await self._log_local(update, draft.updated_by or "rest")
        await self._save_revision()
        self._validate()
        await self.broadcast_server_state()

    async def _log_local(self, update: bytes, author: str) -> None:
        summary = sorted(set(self._paths))[:50]
        self._paths.clear()
        async with self.service.db.transaction() as db:
            self.last_id = await store.append(
                db, self.tenant.id, self.app_id, update, author, summary, utcnow()
            )
        self.size += len(update)
        self.since_compact += 1
        await self.broadcast(p.sync_message(p.UPDATE, update))
        await self.service.relay(self, "update", update)

    async def _save_revision(self) -> None:
        async with self.service.db.transaction() as db:
            await store.set_settled(db, self.app_id, self.last_id, self.draft_revision)

    # -- presence -----------------------------------------------------------------------------

    def server_entry(self) -> p.PresenceEntry:
        """The server's own awareness state: diagnostics of the merged draft."""
        self.server_clock += 1
        return p.PresenceEntry(
            self.server_client_id,
            self.server_clock,
            {
                "server": True,
                "diagnostics": self.diagnostics,
                "valid": not self.diagnostics,
            },
        )

    async def broadcast_server_state(self) -> None:
        """Diagnostics ride on awareness so stock y-websocket clients receive them."""
        await self.broadcast(p.awareness_message(p.encode_awareness([self.server_entry()])))

    async def presence_update(self, conn: Connection, payload: bytes) -> None:
        """Stamp the sender's identity on its awareness states and pass them on."""
        entries = []
        for entry in p.parse_awareness(payload):
            owner = self.presence.get(entry.client_id)
            if entry.client_id == self.server_client_id:
                continue
            if owner is not None and owner[1] is not conn:
                continue  # a client may not speak for another's awareness id
            if entry.state is not None:
                claimed = entry.state.get("user")
                user: dict[str, Any] = claimed if isinstance(claimed, dict) else {}
                entry.state["user"] = {
                    "id": conn.principal.id,
                    "name": conn.principal.audit_name(),
                    "color": str(user.get("color", ""))[:20],
                    "can_edit": conn.can_edit,
                }
                conn.client_ids.add(entry.client_id)
                self.presence[entry.client_id] = (entry, conn)
            else:
                self.presence.pop(entry.client_id, None)
                conn.client_ids.discard(entry.client_id)
            entries.append(entry)
        if entries:
            self._announce(entries)
            if self.service.relaying:
                await self.service.relay(self, "awareness", p.encode_awareness(entries))

    async def presence_remote(self, payload: bytes) -> None:
        """Awareness from another node: already stamped there."""
        entries = p.parse_awareness(payload)
        for entry in entries:
            if entry.state is None:
                self.presence.pop(entry.client_id, None)
            else:
                self.presence[entry.client_id] = (entry, None)
        self._announce(entries)

    def presence_snapshot(self) -> bytes:
        """Every known awareness state plus the server's, for a joining client."""
        entries = [e for e, _ in self.presence.values()] + [self.server_entry()]
        return p.awareness_message(p.encode_awareness(entries))

    async def leave(self, conn: Connection) -> None:
        """Drop a connection and tell the room its presence is gone."""
        self.conns.discard(conn)
        conn.stop()
        if conn.cpu_debt > 0:
            if len(self.cpu_debts) > 1000:
                self.cpu_debts.clear()
            kept = self.cpu_debts.get(conn.principal.id)
            if kept is None or kept[0] < conn.cpu_debt:  # one person, several connections
                self.cpu_debts[conn.principal.id] = (conn.cpu_debt, conn.cpu_last)
        gone = []
        for cid in conn.client_ids:
            entry = self.presence.pop(cid, None)
            clock = entry[0].clock + 1 if entry else 1
            gone.append(p.PresenceEntry(cid, clock, None))
        if gone:
            self._announce(gone)
            if self.service.relaying:
                await self.service.relay(self, "awareness", p.encode_awareness(gone))
        if not self.conns:
            self.idle_since = time.monotonic()

    # -- compaction ---------------------------------------------------------------------------

    async def compact(self) -> None:
        """Fold the logged updates into one snapshot, read back from the database."""
        self.since_compact = 0
        await compact_app(self.service.db, self.tenant.id, self.app_id)


async def compact_app(db: Database, tenant_id: str, app_id: str, min_age: float = 2.0) -> int:
    """Fold log rows older than `min_age` seconds into the snapshot; the number folded.

    Built from the database rather than a live doc, so only what is durably logged is folded.
    The age cut-off keeps rows whose transactions may still be committing out of order. Rows
    are read and folded `FOLD_CHUNK` at a time, the event loop going on between chunks.
    """
    doc: Doc[Any] = Doc()
    folded = 0
    async with db.read() as conn:
        snap = await store.snapshot_of(conn, app_id)
        data, upto, revision = snap if snap is not None else (None, 0, 0)
        if data is not None:
            doc.apply_update(data)
        before = utcnow() - timedelta(seconds=min_age)
        async for rows in store.logged_before(conn, app_id, upto, before, FOLD_CHUNK):
            for _, update in rows:
                doc.apply_update(update)
            upto = rows[-1][0]
            folded += len(rows)
    if not folded:
        return 0
    async with db.transaction() as conn:
        await store.save_snapshot(
            conn, tenant_id, app_id, doc.get_update(), upto, utcnow(), draft_revision=revision
        )
    return folded


# Log rows read and folded between two turns of the event loop (~1 ms): a busy room compacts
# every couple of seconds, and its 500-1,000 rows read and folded at once held every editor's
# update for 5-10 ms.
FOLD_CHUNK = 100
