"""The audit ledger: hash chain, append-only triggers, tamper detection, events, API."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from plinth.cli.audit import cli
from plinth.events import Event
from plinth.governance.audit import AuditEntry
from plinth.server import Platform
from plinth.settings import Settings
from tests.helpers import as_user, make_app, make_tenant, record_events, token_for


async def test_chain_verifies_and_concurrent_writers_keep_it_linear(platform: Platform) -> None:
    ledger = platform.governance.audit

    async def writer(w: int) -> None:
        for i in range(10):
            await ledger.append("t1", AuditEntry(f"w{w}", "test.append", f"r{i}"))

    await asyncio.gather(*(writer(w) for w in range(4)))
    await ledger.append_many("t1", [AuditEntry("batch", "test.batch") for _ in range(5)])
    report = await ledger.verify("t1")
    assert report.ok and report.checked == 45
    assert (await ledger.verify("t2")).checked == 0  # other tenants have their own chain


async def test_database_refuses_update_and_delete(platform: Platform) -> None:
    await platform.governance.audit.append("t1", AuditEntry("a", "x"))
    for stmt in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
        with pytest.raises(Exception, match="append-only"):
            async with platform.db.transaction() as conn:
                await conn.execute(sa.text(stmt))


async def _tamper(platform: Platform, n: int) -> None:
    """Edit a row behind the platform's back (as a DBA with trigger-bypassing rights would)."""
    async with platform.db.transaction() as conn:
        if platform.db.dialect == "postgresql":
            await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            await conn.execute(sa.text("DROP TRIGGER audit_events_no_update"))
        await conn.execute(
            sa.text("UPDATE audit_events SET actor = 'mallory' WHERE tenant_key = 't1' AND n = :n"),
            {"n": n},
        )


async def test_tampered_row_is_reported_by_verify_and_the_cli(
    platform: Platform, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = platform.governance.audit
    for i in range(6):
        await ledger.append("t1", AuditEntry("alice", "test", f"r{i}"))
    await _tamper(platform, 4)
    report = await ledger.verify("t1")
    assert not report.ok and report.broken_at == 4 and report.checked == 3


async def test_cli_verify_reports_broken_chain(
    client: httpx.AsyncClient,
    platform: Platform,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    for i in range(3):
        await platform.governance.audit.append(tid, AuditEntry("alice", "test", f"r{i}"))
    for key, value in (
        ("DATABASE_URL", settings.database_url),
        ("DATA_DIR", str(settings.data_dir)),
        ("ADMIN_TOKEN", "x" * 40),
    ):
        monkeypatch.setenv(f"PLINTH_{key}", str(value))
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, cli, ["verify", "acme"])
    assert result.exit_code == 0 and "intact" in result.output, result.output
    async with platform.db.transaction() as conn:
        if platform.db.dialect == "postgresql":
            await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            await conn.execute(sa.text("DROP TRIGGER audit_events_no_update"))
        await conn.execute(
            sa.text("UPDATE audit_events SET actor = 'eve' WHERE n = 2 AND tenant_key = :t"),
            {"t": tid},
        )
    result = await asyncio.to_thread(runner.invoke, cli, ["verify", "acme"])
    assert result.exit_code == 1 and "BROKEN at event 2" in result.output, result.output


async def test_metadata_changes_records_and_denials_land_in_the_ledger(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    await make_app(client, "acme", "claims", {"entities": {}})
    viewer = await token_for(client, "acme", "viewer")
    r = await client.post(
        "/api/t/acme/apps/claims/publish", json={}, headers=as_user(client, viewer)
    )
    assert r.status_code == 403 and "app.publish" in r.text
    assert "policy" not in r.json()["detail"].lower()
    await record_events(
        platform,
        Event(
            "record.updated",
            tid,
            {
                "app": "claims",
                "entity": "claim",
                "id": "r1",
                "by": "bob",
                "before": {"ssn": "ssn-secret-before"},
                "after": {"ssn": "ssn-secret-after"},
            },
        ),
    )
    await platform.events.publish(Event("plugin.executed", tid, {"plugin": "p", "by": "x"}))
    await platform.governance.audit.drain()
    events = await platform.governance.audit.list(tid, limit=1000)
    actions = [e["action"] for e in events]
    for expected in (
        "app.created",
        "draft.updated",
        "token.issued",
        "denied.app.publish",
        "record.updated",
        "plugin.executed",
    ):
        assert expected in actions, actions
    rec = next(e for e in events if e["action"] == "record.updated")
    assert "ssn-secret" not in json.dumps(rec) and rec["data"]["before_sha256"]
    assert rec["resource"] == "claims/claim/r1" and rec["actor"] == "bob"


async def test_audit_api_filters_pages_and_exports(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    await platform.governance.audit.append_many(
        tid, [AuditEntry(f"user{i % 2}", "test.event", f"thing/{i}") for i in range(25)]
    )
    seen, cursor = [], 0
    while cursor is not None:
        r = await client.get(
            "/api/t/acme/audit",
            params={"actor": "user1", "action": "test.*", "limit": 5, "cursor": cursor},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [e["resource"] for e in body["items"]]
        cursor = body["next_cursor"]
    assert seen == [f"thing/{i}" for i in range(1, 25, 2)]
    r = await client.get("/api/t/acme/audit", params={"format": "jsonl", "resource": "thing/*"})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == 25 and r.headers["content-type"].startswith("application/x-ndjson")
    analyst = await token_for(client, "acme", "analyst")
    r = await client.get("/api/t/acme/audit", headers=as_user(client, analyst))
    assert r.status_code == 403
