"""The ledger on a busy SQLite database: another writer holding the platform file past the
busy timeout. An append is tried again until it lands (or fails where it is seen, never in a
future nobody reads), and entries that record a committed change are written with it, so
concurrent creates and the workflows they start each keep their entries, the chain intact."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

import plinth.db
from plinth.events import Event
from plinth.governance.audit import AuditEntry
from plinth.server import Platform
from tests.helpers import CLAIMS, make_app, make_tenant, publish
from tests.workflows.conftest import ADMIN

BUSY_SECONDS = 0.2  # SQLite's busy timeout on the platform file here (30 s otherwise)


@pytest.fixture(autouse=True)
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the platform connects: how long a transaction waits for another connection's
    write lock (this process's own writers still take turns as ever)."""
    pragmas = tuple(p for p in plinth.db.SQLITE_PRAGMAS if not p.startswith("busy_timeout="))
    monkeypatch.setattr(
        plinth.db, "SQLITE_PRAGMAS", (*pragmas, f"busy_timeout={int(BUSY_SECONDS * 1000)}")
    )


def hold_platform_file(platform: Platform, seconds: float) -> threading.Timer:
    """Another connection takes the platform file's write lock now, for `seconds`."""
    other = sqlite3.connect(
        platform.db.engine.url.database or "",
        timeout=5,
        isolation_level=None,
        check_same_thread=False,
    )
    other.execute("BEGIN IMMEDIATE")

    def release() -> None:
        other.execute("COMMIT")
        other.close()

    timer = threading.Timer(seconds, release)
    timer.start()
    return timer


def unretrieved(caplog: pytest.LogCaptureFixture) -> list[str]:
    """asyncio's reports of failed futures and tasks nobody awaited (made when collected)."""
    gc.collect()
    return [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_append_meeting_a_locked_file_is_tried_again_until_it_lands(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = platform.governance.audit
    hold = hold_platform_file(platform, 3 * BUSY_SECONDS)
    # From an event handler, as the ledger hears app.*, policy.*, token.* …
    await platform.events.publish(Event("app.created", "t1", {"app": "claims", "by": "ann"}))
    hold.join()
    assert [e["action"] for e in await ledger.list("t1")] == ["app.created"]
    assert (await ledger.verify("t1")).ok
    assert unretrieved(caplog) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_append_the_file_stays_locked_for_fails_where_it_is_seen(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = platform.governance.audit
    hold = hold_platform_file(platform, 20 * BUSY_SECONDS)  # longer than every retry
    try:
        caplog.set_level(logging.ERROR, "plinth.audit")
        waiting = asyncio.ensure_future(ledger.append("t1", AuditEntry("bob", "late.joiner")))
        ledger.append_soon("t1", AuditEntry("eve", "denied.app.publish"))  # a denial's way
        with pytest.raises(Exception, match="database is locked"):
            await ledger.append("t1", AuditEntry("ann", "token.issued"))
        with pytest.raises(Exception, match="database is locked"):
            await waiting
        await ledger.drain()
    finally:
        hold.join()
    lost = [r.getMessage() for r in caplog.records if r.name == "plinth.audit"]
    assert any("token.issued" in m and "not appended" in m for m in lost), lost
    assert any("denied.app.publish" in m for m in lost), lost
    assert unretrieved(caplog) == []
    await ledger.append("t1", AuditEntry("ann", "token.issued"))  # the file is free again
    assert (await ledger.verify("t1")).ok


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_append_whose_batch_writer_is_cancelled_still_lands(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    """Group commit: the append that writes a batch may be a request's, cancelled meanwhile (a
    client gone) while the batch is tried again on a busy file. The others' appends in its
    batch are not theirs to lose: they land, and their callers, never cancelled, are not
    told they were."""
    ledger = platform.governance.audit
    hold = hold_platform_file(platform, 10 * BUSY_SECONDS)  # past ann's tries, not bob's
    try:
        first = asyncio.ensure_future(ledger.append("t1", AuditEntry("ann", "token.issued")))
        await asyncio.sleep(BUSY_SECONDS / 2)  # ann's batch is being written: these queue
        writer = asyncio.ensure_future(ledger.append("t1", AuditEntry("bob", "auth.login")))
        follower = asyncio.ensure_future(ledger.append("t1", AuditEntry("eve", "auth.login")))
        await asyncio.sleep(0)
        await asyncio.gather(first, return_exceptions=True)  # ann's batch gave up
        await asyncio.sleep(BUSY_SECONDS / 2)  # bob is writing his batch (his and eve's)
        writer.cancel()
        await follower  # not cancelled: eve's append lands
    finally:
        hold.join()
    await asyncio.gather(writer, return_exceptions=True)
    actors = [e["actor"] for e in await ledger.list("t1")]
    assert "eve" in actors, actors
    assert (await ledger.verify("t1")).ok
    assert unretrieved(caplog) == []


def hold_after_first_dispatch(platform: Platform, seconds: float) -> Callable[[], None]:
    """On SQLite, once the first dispatch of record writes has committed (its workflows
    started; their entries not yet written, were they written apart), another writer holds
    the platform file for `seconds`. Returns how to wait for its release."""
    held: list[threading.Timer] = []

    def hook() -> None:
        if not held and platform.db.is_sqlite:
            held.append(hold_platform_file(platform, seconds))

    def released() -> None:
        for timer in held:
            timer.join()

    platform.outbox.after.insert(0, hook)
    return released


async def test_concurrent_creates_and_the_workflows_they_start_keep_every_entry(
    client: httpx.AsyncClient, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    app = CLAIMS | {
        "workflows": {
            "triage": {
                "first": "a",
                "start": [{"type": "record", "entity": "policyholder", "event": "created"}],
                "nodes": {
                    "a": {"type": "assign", "set": {"seen": "vars.record.id"}, "next": "e"},
                    "e": {"type": "end"},
                },
            }
        }
    }
    assert (await publish(client, "acme", "claims", app)).status_code == 201
    released = hold_after_first_dispatch(platform, 3 * BUSY_SECONDS)
    answers = await asyncio.gather(
        *(
            client.post(
                "/api/t/acme/apps/claims/data/policyholder",
                json={"full_name": f"p{i}", "country": "FR"},
            )
            for i in range(40)
        )
    )
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    ids = {r.json()["id"] for r in answers}
    await platform.outbox.settled()  # the writes' dispatches (the first one held the file)
    released()
    tenant = await platform.tenants.get("acme")
    # Dispatches the locked file refused are the outbox worker's: its sweep, now.
    await platform.outbox.sweep(platform.records.storage.database(tenant), grace=0.0)
    await platform.workflows.engine.drain()
    entries = await platform.governance.audit.list(tenant.id, limit=10_000)
    created = Counter(
        e["resource"].rsplit("/", 1)[-1] for e in entries if e["action"] == "record.created"
    )
    assert created == Counter(ids)  # each once
    instances = await platform.workflows.instances(tenant, ADMIN, workflow="triage", limit=100)
    assert len(instances) == 40 and {i["status"] for i in instances} == {"completed"}
    by_instance = Counter(
        (e["action"], e["data"]["instance"]) for e in entries if e["action"].startswith("workflow.")
    )
    started = {i["id"] for i in instances}
    assert by_instance == Counter(
        {(a, i): 1 for i in started for a in ("workflow.started", "workflow.completed")}
    )
    assert (await platform.governance.audit.verify(tenant.id)).ok
    assert unretrieved(caplog) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_effects_of_several_tenants_lock_their_chains_in_one_order(
    platform: Platform,
) -> None:
    """A transaction making events of several tenants (a schedule tick's starts, a dispatch of
    several tenants' writes) writes their entries, locking each tenant's chain: two such
    transactions given the tenants in opposite orders (two nodes) must not deadlock."""
    engine = platform.workflows.engine

    def started(tenant: str) -> Event:
        return Event("workflow.started", tenant, {"app": "a", "workflow": "w", "by": "schedule"})

    async def tick(tenants: list[str]) -> None:
        async with platform.db.transaction() as conn:
            await engine.take_effect(conn, [started(t) for t in tenants])

    for _ in range(5):
        await asyncio.gather(tick(["t1", "t2"]), tick(["t2", "t1"]))
    ledger = platform.governance.audit
    assert (await ledger.verify("t1")).ok and (await ledger.verify("t2")).ok
    assert len(await ledger.list("t1")) == 10
