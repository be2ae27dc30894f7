"""Checking an audit chain (`AuditLedger.verify`): one walk over a tenant's events and signed
checkpoints in a snapshot, every link, MAC, checkpoint and anchored checkpoint, reporting the
first event where one does not hold. Writing the chain is `audit`; its hashing is `chain`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.governance.chain import GENESIS, Checkpoint, LedgerKey, event_body, legacy_hash
from plinth.governance.store import audit_checkpoints, audit_events


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str = ""
    checkpoints: int = 0  # signed checkpoints that matched the chain
    anchored: int = 0  # checkpoints from the anchor that matched the chain
    legacy: int = 0  # events linked by plain SHA-256 (written before the keyed chain)
    head: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.checked,
            "broken_at": self.broken_at,
            "reason": self.reason,
            "checkpoints": self.checkpoints,
            "anchored": self.anchored,
            "legacy_events": self.legacy,
            "head": self.head,
        }


@dataclass
class _Walk:
    """What `verify` has established so far."""

    keys: dict[str, LedgerKey]
    anchored: dict[int, list[Checkpoint]]
    prev: str = GENESIS
    n: int = 0
    keyed: bool = False
    legacy: int = 0
    checkpoints: int = 0
    anchors_ok: int = 0
    last_checkpoint: int = 0
    pending: list[Checkpoint] = field(default_factory=list)


class LedgerBroken(Exception):
    def __init__(self, at: int, reason: str) -> None:
        super().__init__(reason)
        self.at, self.reason = at, reason


async def walk(
    conn: AsyncConnection,
    key: str,
    keys: dict[str, LedgerKey],
    anchored: dict[int, list[Checkpoint]],
    batch: int,
) -> VerifyReport:
    """The chain `key` as `conn` (a snapshot) sees it, checked against the ledger's `keys` and
    the checkpoints an anchor holds (`anchored`, by event count), read `batch` rows at a time."""
    walk = _Walk(keys, anchored)
    try:
        checkpoints = _checkpoints(conn, key, batch)
        async for row in _events(conn, key, batch):
            _check_event(walk, key, row)
            await _check_checkpoints(walk, checkpoints, row.n)
        await _check_checkpoints(walk, checkpoints, None)
        _check_end(walk)
    except LedgerBroken as exc:
        return VerifyReport(
            False,
            exc.at - 1 if exc.at else walk.n,
            exc.at,
            exc.reason,
            walk.checkpoints,
            walk.anchors_ok,
            walk.legacy,
        )
    return VerifyReport(
        True,
        walk.n,
        checkpoints=walk.checkpoints,
        anchored=walk.anchors_ok,
        legacy=walk.legacy,
        head=walk.prev if walk.n else None,
    )


def _check_event(walk: _Walk, key: str, row: Any) -> None:
    expected = walk.n + 1
    if row.n != expected:
        raise LedgerBroken(expected, "event missing from the chain")
    if row.prev_hash != walk.prev:
        raise LedgerBroken(row.n, "link to previous event broken")
    if row.key_id is None:
        if walk.keyed:
            raise LedgerBroken(row.n, "an unkeyed event after the keyed chain began")
        body = event_body(
            None, key, row.n, row.at, row.actor, row.action, row.resource, row.outcome, row.data
        )
        digest = legacy_hash(walk.prev, body)
        walk.legacy += 1
    else:
        ledger = walk.keys.get(row.key_id)
        if ledger is None:
            raise LedgerBroken(row.n, "event made with a key this ledger does not know")
        body = event_body(
            row.key_id,
            key,
            row.n,
            row.at,
            row.actor,
            row.action,
            row.resource,
            row.outcome,
            row.data,
        )
        digest = ledger.mac(walk.prev, body)
        walk.keyed = True
    if digest != row.hash:
        raise LedgerBroken(row.n, "event content changed, or not made with the ledger key")
    for cp in walk.anchored.pop(row.n, []):
        signer = walk.keys.get(cp.key_id)
        if signer is None or not cp.signed_by(signer.public_key):
            raise LedgerBroken(row.n, "an anchored checkpoint is not signed by this ledger")
        if cp.head != row.hash:
            raise LedgerBroken(row.n, "the chain differs from the anchored checkpoint here")
        walk.anchors_ok += 1
    walk.prev, walk.n = row.hash, row.n


async def _check_checkpoints(
    walk: _Walk, checkpoints: AsyncIterator[Any], upto: int | None
) -> None:
    """Consume the checkpoints up to event `upto` (None: the rest, after the last event)."""
    while True:
        if not walk.pending:
            cp = await anext(checkpoints, None)
            if cp is None:
                return
            walk.pending.append(cp)
        cp = walk.pending[0]
        if upto is not None and cp.n > upto:
            return
        walk.pending.pop(0)
        signer = walk.keys.get(cp.key_id)
        if signer is None or not cp.signed_by(signer.public_key):
            raise LedgerBroken(cp.n, "a checkpoint is not signed by this ledger")
        if upto is None or cp.n != upto:
            raise LedgerBroken(
                walk.n + 1,
                f"events removed: a signed checkpoint says the chain had {cp.n} events, "
                f"it has {walk.n}",
            )
        if cp.head != walk.prev:
            raise LedgerBroken(cp.n, "the chain differs from its signed checkpoint here")
        walk.checkpoints += 1
        walk.last_checkpoint = cp.n


def _check_end(walk: _Walk) -> None:
    for cps in walk.anchored.values():
        for cp in cps:
            signer = walk.keys.get(cp.key_id)
            if signer is None or not cp.signed_by(signer.public_key):
                raise LedgerBroken(cp.n, "an anchored checkpoint is not signed by this ledger")
    if walk.anchored:
        n = min(walk.anchored)
        raise LedgerBroken(
            walk.n + 1,
            f"events removed: the anchor holds a checkpoint of {n} events, the chain has {walk.n}",
        )
    if walk.n and walk.last_checkpoint != walk.n:
        raise LedgerBroken(
            walk.last_checkpoint + 1,
            "events after the last signed checkpoint: appended behind the ledger's back",
        )


async def _events(conn: AsyncConnection, key: str, batch: int) -> AsyncIterator[Any]:
    after = 0
    while True:
        rows = (
            await conn.execute(
                sa.select(audit_events)
                .where(audit_events.c.tenant_key == key, audit_events.c.n > after)
                .order_by(audit_events.c.n)
                .limit(batch)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].n


async def _checkpoints(conn: AsyncConnection, key: str, batch: int) -> AsyncIterator[Checkpoint]:
    after = -1
    t = audit_checkpoints
    while True:
        rows = (
            await conn.execute(
                sa.select(t)
                .where(t.c.tenant_key == key, t.c.n > after)
                .order_by(t.c.n)
                .limit(batch)
            )
        ).all()
        if not rows:
            return
        for r in rows:
            yield Checkpoint(r.tenant_key, r.n, r.head, r.at, r.key_id, r.signature)
        after = rows[-1].n
