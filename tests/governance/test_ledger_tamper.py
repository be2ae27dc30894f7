"""The keyed ledger against someone who can write the database but holds no master key.

Each tampering works on its own chain (a tenant key of its own) of one platform per database,
done the way such an attacker would: triggers bypassed (PostgreSQL `session_replication_role`,
SQLite: triggers dropped), rows edited, deleted, renumbered, re-hashed with every hash the
attacker can compute, or forged. `verify` must name the break every time.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.governance.anchor import FileAnchor, UrlAnchor
from plinth.governance.audit import AuditEntry, AuditLedger
from plinth.governance.chain import Checkpoint, LedgerKey, event_body, legacy_hash
from plinth.server import Platform
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN, DATABASES, _pg_admin, _pg_dsn

EVENTS = 8
Tamper = Callable[[AsyncConnection, str], Awaitable[None]]


async def _rows(conn: AsyncConnection, chain: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        sa.text("SELECT * FROM audit_events WHERE tenant_key = :t ORDER BY n"), {"t": chain}
    )
    return [dict(r._mapping) for r in rows]


def _data(row: dict[str, Any]) -> Any:
    return json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]


def _at(row: dict[str, Any]) -> Any:
    from datetime import UTC, datetime

    at = row["at"]
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _attacker_hash(row: dict[str, Any], prev: str, key_id: str | None) -> str:
    """The best hash someone without the ledger key can make: SHA-256 (as the old chain did),
    or an HMAC under a key of their own."""
    body = event_body(
        key_id,
        row["tenant_key"],
        row["n"],
        _at(row),
        row["actor"],
        row["action"],
        row["resource"],
        row["outcome"],
        _data(row),
    )
    if key_id is None:
        return legacy_hash(prev, body)
    return LedgerKey(b"attacker-guessed-key-0123456789ab").mac(prev, body)


async def _rewrite(conn: AsyncConnection, chain: str, rows: list[dict[str, Any]]) -> None:
    """Replace a chain's events by `rows`, renumbered and re-hashed forward."""
    await conn.execute(sa.text("DELETE FROM audit_events WHERE tenant_key = :t"), {"t": chain})
    prev = "0" * 64
    for n, row in enumerate(rows, 1):
        row = {**row, "n": n, "prev_hash": prev}
        row["hash"] = _attacker_hash(row, prev, row["key_id"])
        await _insert(conn, row)
        prev = row["hash"]


async def _insert(conn: AsyncConnection, row: dict[str, Any]) -> None:
    from plinth.governance.store import audit_events

    values = {k: v for k, v in row.items() if k != "seq"}
    values["data"] = _data(row)
    values["at"] = _at(row)
    await conn.execute(audit_events.insert().values(**values))


async def _exec(conn: AsyncConnection, sql: str, chain: str, **kw: Any) -> None:
    await conn.execute(sa.text(sql), {"t": chain, **kw})


# -- the tamperings -----------------------------------------------------------------------------


async def edit_middle(conn: AsyncConnection, chain: str) -> None:
    await _exec(
        conn, "UPDATE audit_events SET actor = 'mallory' WHERE tenant_key=:t AND n=4", chain
    )


async def edit_first_data(conn: AsyncConnection, chain: str) -> None:
    rows = await _rows(conn, chain)
    data = json.dumps({**_data(rows[0]), "amount": 1})
    await _exec(
        conn, "UPDATE audit_events SET data = :d WHERE tenant_key=:t AND n=1", chain, d=data
    )


async def edit_prev_link(conn: AsyncConnection, chain: str) -> None:
    await _exec(
        conn,
        "UPDATE audit_events SET prev_hash = :h WHERE tenant_key=:t AND n=5",
        chain,
        h="0" * 64,
    )


def delete(*ns: int) -> Tamper:
    async def run(conn: AsyncConnection, chain: str) -> None:
        for n in ns:
            await _exec(conn, "DELETE FROM audit_events WHERE tenant_key=:t AND n=:n", chain, n=n)

    return run


async def delete_last_five(conn: AsyncConnection, chain: str) -> None:
    await _exec(
        conn, "DELETE FROM audit_events WHERE tenant_key=:t AND n > :n", chain, n=EVENTS - 5
    )


async def delete_all(conn: AsyncConnection, chain: str) -> None:
    await _exec(conn, "DELETE FROM audit_events WHERE tenant_key=:t", chain)


async def reorder(conn: AsyncConnection, chain: str) -> None:
    for sql in ("n = -3 WHERE n = 3", "n = 3 WHERE n = 6", "n = 6 WHERE n = -3"):
        await _exec(conn, f"UPDATE audit_events SET {sql} AND tenant_key=:t", chain)


def rehash_forward(key_id: bool) -> Tamper:
    """Edit event 3 and re-hash it and everything after it."""

    async def run(conn: AsyncConnection, chain: str) -> None:
        rows = await _rows(conn, chain)
        rows[2]["actor"] = "mallory"
        if not key_id:
            rows = [{**r, "key_id": None} for r in rows]
        await _rewrite(conn, chain, rows)

    return run


async def delete_renumber_rehash(conn: AsyncConnection, chain: str) -> None:
    rows = await _rows(conn, chain)
    await _rewrite(conn, chain, [r for r in rows if r["n"] != 4])


async def delete_renumber_rehash_legacy(conn: AsyncConnection, chain: str) -> None:
    """The whole chain rewritten the old, unkeyed way, checkpoints deleted."""
    rows = await _rows(conn, chain)
    await _rewrite(conn, chain, [{**r, "key_id": None} for r in rows if r["n"] != 4])
    await _exec(conn, "DELETE FROM audit_checkpoints WHERE tenant_key=:t", chain)


def forged_append(key_id: bool, checkpoint: bool = False) -> Tamper:
    async def run(conn: AsyncConnection, chain: str) -> None:
        rows = await _rows(conn, chain)
        last = rows[-1]
        row = {
            **last,
            "n": last["n"] + 1,
            "actor": "mallory",
            "action": "record.deleted",
            "prev_hash": last["hash"],
            "key_id": last["key_id"] if key_id else None,
        }
        row["hash"] = _attacker_hash(row, last["hash"], row["key_id"])
        await _insert(conn, row)
        if checkpoint:
            cp = Checkpoint(chain, row["n"], row["hash"], "2030-01-01T00:00:00+00:00", "x" * 16)
            attacker = LedgerKey(b"attacker-guessed-key-0123456789ab")
            await conn.execute(
                sa.text(
                    "INSERT INTO audit_checkpoints (tenant_key, n, head, at, key_id, signature) "
                    "VALUES (:t, :n, :h, :a, :k, :s)"
                ),
                {
                    "t": chain,
                    "n": cp.n,
                    "h": cp.head,
                    "a": cp.at,
                    "k": attacker.id,
                    "s": attacker.sign(cp),
                },
            )

    return run


async def forge_checkpoint_head(conn: AsyncConnection, chain: str) -> None:
    await _exec(
        conn,
        "UPDATE audit_checkpoints SET head = :h WHERE tenant_key=:t AND n = :n",
        chain,
        h=hashlib.sha256(b"x").hexdigest(),
        n=EVENTS,
    )


async def cut_tail_with_checkpoints(conn: AsyncConnection, chain: str) -> None:
    """The end of the chain cut together with the checkpoints naming it: a shorter chain
    that is consistent in the database (the anchor outside it still knows). Cut where a
    checkpoint is (after event 4: the batch of 5-8 has one), else the cut shows anyway."""
    await _exec(conn, "DELETE FROM audit_events WHERE tenant_key=:t AND n > 4", chain)
    await _exec(conn, "DELETE FROM audit_checkpoints WHERE tenant_key=:t AND n > 4", chain)


async def cut_everything(conn: AsyncConnection, chain: str) -> None:
    await _exec(conn, "DELETE FROM audit_events WHERE tenant_key=:t", chain)
    await _exec(conn, "DELETE FROM audit_checkpoints WHERE tenant_key=:t", chain)


MATRIX: dict[str, Tamper] = {
    "edit a middle event": edit_middle,
    "edit the first event's data": edit_first_data,
    "edit a link": edit_prev_link,
    "delete the first event": delete(1),
    "delete a middle event": delete(4),
    "delete the last event": delete(EVENTS),
    "delete the last 5 events": delete_last_five,
    "delete every event": delete_all,
    "reorder two events": reorder,
    "edit and re-hash forward (HMAC, guessed key)": rehash_forward(key_id=True),
    "edit and re-hash forward (SHA-256, no key)": rehash_forward(key_id=False),
    "delete, renumber and re-hash": delete_renumber_rehash,
    "delete, renumber, re-hash unkeyed, drop checkpoints": delete_renumber_rehash_legacy,
    "append a forged event (SHA-256)": forged_append(key_id=False),
    "append a forged event (HMAC, guessed key)": forged_append(key_id=True),
    "append a forged event and checkpoint": forged_append(key_id=True, checkpoint=True),
    "edit a checkpoint": forge_checkpoint_head,
}
# Detected only against the anchor: in the database alone these leave a consistent, shorter
# ledger (README: what an attacker with write access can and cannot hide).
ANCHORED: dict[str, Tamper] = {
    "cut the tail and its checkpoints": cut_tail_with_checkpoints,
    "delete every event and checkpoint": cut_everything,
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        audit_anchor=str(tmp_path / "anchor.jsonl"),
    )


async def _bypass(conn: AsyncConnection, dialect: str) -> None:
    """What an attacker with the database's superuser (or the file) does first."""
    if dialect == "postgresql":
        await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
    else:
        for name in (
            "audit_events_no_update",
            "audit_events_no_delete",
            "audit_checkpoints_no_update",
            "audit_checkpoints_no_delete",
        ):
            await conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {name}"))


async def _fill(ledger: AuditLedger, chain: str) -> None:
    for i in range(EVENTS // 2):  # singly and in batches: both make checkpoints
        await ledger.append(chain, AuditEntry("alice", "record.updated", f"r{i}", data={"i": i}))
    await ledger.append_many(
        chain, [AuditEntry("bob", "record.created", f"b{i}") for i in range(EVENTS // 2)]
    )


async def test_every_tampering_is_detected(platform: Platform) -> None:
    ledger = platform.governance.audit
    chains = {name: f"tamper{i}" for i, name in enumerate([*MATRIX, *ANCHORED, "truncate"])}
    for chain in chains.values():
        await _fill(ledger, chain)
        assert (await ledger.verify(chain)).ok
    assert await ledger.export_anchor() >= len(chains)
    for name, tamper in {**MATRIX, **ANCHORED}.items():
        async with platform.db.transaction() as conn:
            await _bypass(conn, platform.db.dialect)
            await tamper(conn, chains[name])
    results = {}
    for name in MATRIX:
        report = await ledger.verify(chains[name], anchor=_NoAnchor())
        results[name] = report
    missed = [name for name, r in results.items() if r.ok]
    assert not missed, f"not detected without an anchor: {missed}"
    assert results["delete the last event"].broken_at == EVENTS
    assert "removed" in results["delete every event"].reason
    assert results["edit a middle event"].broken_at == 4
    for name in ANCHORED:
        assert (await ledger.verify(chains[name], anchor=_NoAnchor())).ok  # the database agrees
        report = await ledger.verify(chains[name])  # the anchor does not
        assert not report.ok and "anchor" in report.reason, (name, report)

    # TRUNCATE (refused by a trigger: test below) done anyway by a superuser: detected.
    async with platform.db.transaction() as conn:
        await _bypass(conn, platform.db.dialect)
        stmt = (
            "TRUNCATE audit_events"
            if platform.db.dialect == "postgresql"
            else "DELETE FROM audit_events"
        )
        await conn.execute(sa.text(stmt))
    report = await ledger.verify(chains["truncate"], anchor=_NoAnchor())
    assert not report.ok and report.broken_at == 1 and "removed" in report.reason
    # TRUNCATE of the checkpoints too: only the anchor still knows.
    async with platform.db.transaction() as conn:
        await _bypass(conn, platform.db.dialect)
        if platform.db.dialect == "postgresql":
            await conn.execute(sa.text("TRUNCATE audit_checkpoints"))
        else:
            await conn.execute(sa.text("DELETE FROM audit_checkpoints"))
    report = await ledger.verify(chains["truncate"])
    assert not report.ok and "anchor" in report.reason


class _NoAnchor:
    async def publish(self, checkpoints: list[Checkpoint], public_keys: dict[str, str]) -> None:
        raise AssertionError("not used")

    async def read(self, tenant_key: str) -> list[Checkpoint]:
        return []


async def test_the_database_refuses_rewrites_of_events_and_checkpoints(platform: Platform) -> None:
    await platform.governance.audit.append("t1", AuditEntry("a", "x"))
    statements = [
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "UPDATE audit_checkpoints SET n = 0",
        "DELETE FROM audit_checkpoints",
    ]
    if platform.db.dialect == "postgresql":
        statements += ["TRUNCATE audit_events", "TRUNCATE audit_checkpoints"]
    for stmt in statements:
        with pytest.raises(Exception, match="append-only"):
            async with platform.db.transaction() as conn:
                await conn.execute(sa.text(stmt))
    assert (await platform.governance.audit.verify("t1")).ok


async def test_a_ledger_from_before_the_keyed_chain_is_kept_and_sealed(
    platform: Platform, settings: Settings
) -> None:
    """An old plain SHA-256 chain verifies as it was; at the next start it is checkpointed,
    new events link to it with the key, and rewriting the old part is then detected."""
    from plinth.governance.store import audit_events

    async with platform.db.transaction() as conn:
        prev = "0" * 64
        for n in range(1, 4):
            from plinth.db import utcnow

            at = utcnow() - timedelta(days=1)
            body = event_body(None, "old", n, at, "alice", "app.created", None, "ok", {"n": n})
            digest = legacy_hash(prev, body)
            await conn.execute(
                audit_events.insert().values(
                    tenant_key="old",
                    n=n,
                    at=at,
                    actor="alice",
                    action="app.created",
                    resource=None,
                    outcome="ok",
                    data={"n": n},
                    prev_hash=prev,
                    hash=digest,
                    key_id=None,
                )
            )
            prev = digest
    ledger = platform.governance.audit
    assert await ledger.seal_legacy() == 1  # what every start does
    await ledger.append("old", AuditEntry("bob", "app.published"))
    report = await ledger.verify("old")
    assert report.ok and report.checked == 4 and report.legacy == 3, report
    async with platform.db.transaction() as conn:
        await _bypass(conn, platform.db.dialect)
        rows = await _rows(conn, "old")
        rows[0]["actor"] = "mallory"
        legacy, keyed = rows[:3], rows[3:]
        await _rewrite(conn, "old", legacy)  # re-hashed forward the old way
        for row in keyed:
            await _insert(conn, row)
    report = await ledger.verify("old")
    assert not report.ok and report.broken_at == 3, report  # the signed checkpoint of the upgrade


async def test_history_verifies_across_a_master_key_rotation(platform: Platform) -> None:
    ledger = platform.governance.audit
    await ledger.append("t1", AuditEntry("a", "before"))
    old = ledger.key().id
    await platform.vault.rotate_master(secrets.token_bytes(32))
    await ledger.append("t1", AuditEntry("a", "after"))
    assert ledger.key().id != old
    report = await ledger.verify("t1")
    assert report.ok and report.checked == 2 and report.checkpoints == 2, report
    rows = await ledger.list("t1")
    assert [r["key_id"] for r in rows] == [old, ledger.key().id]


class _AnchorService(BaseHTTPRequestHandler):
    kept: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.kept.extend(body["checkpoints"])
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        tenant = parse_qs(urlparse(self.path).query)["tenant_key"][0]
        out = json.dumps({"checkpoints": [c for c in self.kept if c["tenant_key"] == tenant]})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(out.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def anchor_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AnchorService)
    _AnchorService.kept = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/anchor"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_url_anchor_keeps_checkpoints_and_catches_a_rollback(
    platform: Platform, anchor_service: str, tmp_path: Path
) -> None:
    ledger = platform.governance.audit
    await _fill(ledger, "t1")
    anchor = UrlAnchor(anchor_service)
    assert await ledger.export_anchor(anchor) >= 1
    report = await ledger.verify("t1", anchor=anchor)
    assert report.ok and report.anchored == 1
    async with platform.db.transaction() as conn:
        await _bypass(conn, platform.db.dialect)
        await cut_tail_with_checkpoints(conn, "t1")
    report = await ledger.verify("t1", anchor=anchor)
    assert not report.ok and report.broken_at == 5 and "anchor" in report.reason
    # A file anchor someone edited to hide the rollback: a forged signature is refused.
    path = tmp_path / "edited.jsonl"
    forged = Checkpoint("t1", 5, "f" * 64, "2030-01-01T00:00:00+00:00", ledger.key().id, "00" * 64)
    await FileAnchor(path).publish([forged], {})
    report = await ledger.verify("t1", anchor=FileAnchor(path))
    assert not report.ok and "not signed" in report.reason


async def test_verify_over_http(platform: Platform, client: Any) -> None:
    from tests.helpers import as_user, make_app, make_tenant, token_for

    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", {"entities": {}})
    await platform.governance.audit.drain()
    r = await client.get("/api/t/acme/audit/verify")
    assert r.status_code == 200 and r.json()["ok"], r.text
    assert r.json()["events"] >= 1 and r.json()["checkpoints"] >= 1, r.json()
    viewer = await token_for(client, "acme", "viewer")
    r = await client.get("/api/t/acme/audit/verify", headers=as_user(client, viewer))
    assert r.status_code == 403


@pytest.mark.skipif("postgresql" not in DATABASES, reason="PostgreSQL roles")
async def test_the_apps_role_cannot_rewrite_or_truncate_the_ledger(tmp_path: Path) -> None:
    """The real arrangement (README): the database and its schema belong to the DBA; the app's
    role (no superuser; CREATEROLE only for its first migration, dropped after) may create
    tables in it and migrates it; the ledger tables then belong to `plinth_ledger`, and the
    app may only read and append them."""
    role = f"plinth_app_{secrets.token_hex(4)}"
    database = f"plinth_role_{secrets.token_hex(4)}"
    await _pg_admin(f"CREATE ROLE {role} LOGIN CREATEROLE")
    await _pg_admin(f'CREATE DATABASE "{database}"')  # the DBA's, not the app's
    dba = await asyncpg.connect(_pg_dsn(database))
    try:
        await dba.execute(f'GRANT CREATE ON DATABASE "{database}" TO {role}')
        await dba.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
        await dba.execute(
            "DO $$ BEGIN CREATE ROLE plinth_ledger NOLOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        await dba.execute("GRANT USAGE, CREATE ON SCHEMA public TO plinth_ledger")
    finally:
        await dba.close()
    base = _pg_dsn(database).replace("postgres@", f"{role}@", 1)
    try:
        platform = Platform(
            Settings(
                data_dir=tmp_path / "data",
                database_url=base.replace("postgresql://", "postgresql+asyncpg://", 1),
                admin_token=ADMIN_TOKEN,
                embedded_worker=False,
            )
        )
        await platform.start()
        try:
            await platform.governance.audit.append("t1", AuditEntry("a", "x"))
        finally:
            await platform.stop()
        await _pg_admin(f"ALTER ROLE {role} NOCREATEROLE")
        conn = await asyncpg.connect(base)
        try:
            owner = await conn.fetchval(
                "SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events'"
            )
            assert owner == "plinth_ledger"
            for stmt in (
                "UPDATE audit_events SET actor = 'mallory'",
                "DELETE FROM audit_events",
                "TRUNCATE audit_events",
                "TRUNCATE audit_checkpoints",
                "DELETE FROM audit_checkpoints",
                "ALTER TABLE audit_events DISABLE TRIGGER ALL",
                "DROP TABLE audit_events",
                "SET session_replication_role = replica",
                "SET ROLE plinth_ledger",
                f"GRANT plinth_ledger TO {role}",
            ):
                with pytest.raises(asyncpg.PostgresError, match=".") as err:
                    await conn.execute(stmt)
                assert isinstance(
                    err.value,
                    asyncpg.InsufficientPrivilegeError | asyncpg.RaiseError,
                ), (stmt, err.value)
            assert await conn.fetchval("SELECT count(*) FROM audit_events") >= 1
        finally:
            await conn.close()
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await _pg_admin(f"DROP ROLE IF EXISTS {role}")
