"""Webhooks out (signed, retried, logged, redelivered) and in (verified, replay refused,
publishing webhook.received) against a real receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from plinth.events import Event
from plinth.integration import signing
from plinth.integration.models import Delivery
from plinth.server import Platform, create_app
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.helpers import record_events
from tests.integration.helpers import published
from tests.integration.remote import Remote

HOOK_SECRET = "whsec-very-secret-123"


async def test_record_events_are_delivered_signed(
    client: httpx.AsyncClient, remote: Remote, platform: Platform
) -> None:
    doc = {
        "kind": "webhook_out",
        "url": f"{remote.url}/hook",
        "events": ["record.created"],
        "secret": {"secret": "hook"},
    }
    await published(
        client, "acme", "crm", {"connectors": {"out": doc}}, secrets={"hook": HOOK_SECRET}
    )
    tenant = await platform.tenants.get("acme")
    await record_events(
        platform,
        Event("record.created", tenant.id, {"app": "crm", "entity": "claim", "id": "r1"}),
        Event("record.deleted", tenant.id, {"app": "crm"}),
        Event("record.created", tenant.id, {"app": "other"}),
    )
    await platform.connectors.webhooks.drain()
    assert len(remote.hooks) == 1
    hook = remote.hooks[0]
    body = hook["body"]
    headers = {k.lower(): v for k, v in hook["headers"].items()}
    # The receiver can check it with the shared secret; the body says what happened.
    signing.verify(HOOK_SECRET, headers["plinth-signature"], headers["plinth-delivery"], body)
    payload = json.loads(body)
    assert payload["topic"] == "record.created" and payload["data"]["id"] == "r1"
    r = await client.get("/api/t/acme/apps/crm/connectors/out/deliveries")
    [delivery] = r.json()["items"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert HOOK_SECRET not in r.text


async def test_failed_deliveries_retry_then_redeliver(
    client: httpx.AsyncClient, remote: Remote
) -> None:
    doc = {
        "kind": "webhook_out",
        "url": f"{remote.url}/hook",
        "secret": {"secret": "hook"},
        "max_attempts": 3,
        "backoff_seconds": 0.01,
    }
    await published(
        client, "acme", "crm", {"connectors": {"out": doc}}, secrets={"hook": HOOK_SECRET}
    )
    remote.hook_status = 500
    r = await client.post(
        "/api/t/acme/apps/crm/connectors/out/call",
        json={"operation": "send", "input": {"topic": "record.updated", "data": {"n": 1}}},
    )
    assert r.status_code == 200, r.text
    delivery_id = r.json()["delivery"]
    platform: Platform = client._transport.app.state.platform  # type: ignore[attr-defined]
    await platform.connectors.webhooks.drain()
    r = await client.get("/api/t/acme/apps/crm/connectors/out/deliveries")
    [logged] = r.json()["items"]
    assert (logged["status"], logged["attempts"], logged["last_status"]) == ("dead", 3, 500)
    assert len(remote.hooks) == 3
    remote.hook_status = 200
    r = await client.post(f"/api/t/acme/apps/crm/connectors/out/deliveries/{delivery_id}/redeliver")
    assert r.status_code == 200 and r.json()["status"] == "delivered"
    assert r.json()["attempts"] == 4
    # The redelivery carries the same id (receivers dedupe on it) and a fresh signature.
    ids = {h["headers"]["Plinth-Delivery"] for h in remote.hooks}
    assert ids == {delivery_id}
    assert remote.hooks[-1]["body"] == remote.hooks[0]["body"]


async def test_incoming_webhooks_verify_refuse_replays_and_start_work(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    doc = {"kind": "webhook_in", "secret": {"secret": "inbound"}, "tolerance_seconds": 60}
    await published(
        client, "acme", "crm", {"connectors": {"orders": doc}}, secrets={"inbound": HOOK_SECRET}
    )
    received: list[Event] = []

    async def keep(event: Event) -> None:
        received.append(event)

    platform.events.subscribe("webhook.received", keep)
    url = "/api/t/acme/apps/crm/hooks/orders"
    body = json.dumps({"order": 42}).encode()

    def signed(delivery: str, at: int | None = None, secret: str = HOOK_SECRET) -> dict:
        stamp = int(time.time()) if at is None else at
        return {
            signing.SIGNATURE: signing.signature(secret, stamp, delivery, body),
            signing.DELIVERY: delivery,
            "Content-Type": "application/json",
        }

    r = await anon.post(url, content=body, headers=signed("d-1"))
    assert r.status_code == 202, r.text
    assert [e.data["payload"] for e in received] == [{"order": 42}]
    assert received[0].data["app"] == "crm" and received[0].tenant_id

    r = await anon.post(url, content=body, headers=signed("d-1"))  # the same delivery again
    assert r.status_code == 409 and r.json()["code"] == "replay"
    r = await anon.post(url, content=body, headers=signed("d-2", at=int(time.time()) - 600))
    assert r.status_code == 401 and "replay" in r.json()["detail"]
    r = await anon.post(url, content=body, headers=signed("d-3", secret="wrong"))
    assert r.status_code == 401 and r.json()["code"] == "signature_refused"
    r = await anon.post(url, content=body + b" ", headers=signed("d-4"))
    assert r.status_code == 401
    r = await anon.post(url, content=body)
    assert r.status_code == 401
    r = await anon.post("/api/t/acme/apps/crm/hooks/nope", content=body, headers=signed("d-5"))
    assert r.status_code == 404
    assert len(received) == 1
    assert all(HOOK_SECRET not in repr(e.data) for e in received)


async def test_queued_deliveries_survive_a_restart(settings: Settings, remote: Remote) -> None:
    """A delivery that failed once is retrying when the platform stops; the next process on
    the same database (an embedded worker, or `plinth worker`) delivers it, exactly once."""
    doc = {
        "kind": "webhook_out",
        "url": f"{remote.url}/hook",
        "secret": {"secret": "hook"},
        "max_attempts": 4,
        "backoff_seconds": 0.2,
    }
    first = Platform(settings)
    await first.start()
    try:
        async with _client(first) as client:
            await published(
                client, "acme", "crm", {"connectors": {"out": doc}}, secrets={"hook": HOOK_SECRET}
            )
            remote.hook_status = 503
            r = await client.post(
                "/api/t/acme/apps/crm/connectors/out/call",
                json={"operation": "send", "input": {"topic": "record.created", "data": {"n": 7}}},
            )
            delivery_id = r.json()["delivery"]
            assert await first.connectors.webhooks.run_due() == 1
            [logged] = (await client.get("/api/t/acme/apps/crm/connectors/out/deliveries")).json()[
                "items"
            ]
            assert (logged["status"], logged["attempts"]) == ("retrying", 1)
            assert logged["next_attempt_at"] is not None
    finally:
        await first.stop()  # nothing in memory holds the retry: only its row

    remote.hook_status = 200
    if first.db.is_sqlite:  # reopened: a server's embedded worker picks the delivery up
        second = Platform(settings.model_copy(update={"embedded_worker": True}))
        await second.start(workers=True)
        try:
            delivered = await _wait_for(second, "acme", delivery_id, "delivered")
        finally:
            await second.stop()
    else:  # scaled out: a `plinth worker` process does
        worker = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "plinth"),
            "worker",
            "--poll",
            "0.1",
            env={
                **os.environ,
                "PLINTH_DATABASE_URL": settings.resolved_database_url,
                "PLINTH_DATA_DIR": str(settings.data_dir),
            },
        )
        reader = Platform(settings)
        try:
            delivered = await _wait_for(reader, "acme", delivery_id, "delivered", 60)
        finally:
            worker.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.wait(), 30)
            await reader.stop()
    assert delivered.attempts == 2
    ok = [h for h in remote.hooks if h["headers"]["Plinth-Delivery"] == delivery_id]
    assert len(ok) == 2 and json.loads(ok[-1]["body"])["data"] == {"n": 7}  # 503, then 200
    signing.verify(HOOK_SECRET, ok[-1]["headers"]["Plinth-Signature"], delivery_id, ok[-1]["body"])


def _client(platform: Platform) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(platform=platform))
    return httpx.AsyncClient(
        transport=transport,
        base_url="http://plinth.test",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )


async def _wait_for(
    platform: Platform, tenant: str, delivery_id: str, status: str, seconds: float = 10.0
) -> Delivery:
    tenant_id = (await platform.tenants.get(tenant)).id
    end = time.monotonic() + seconds
    while True:
        found = await platform.connectors.webhooks.get(tenant_id, delivery_id)
        if found.status == status or time.monotonic() > end:
            assert found.status == status, found
            return found
        await asyncio.sleep(0.05)


async def test_concurrent_workers_never_claim_the_same_delivery(platform: Platform) -> None:
    tenant = await platform.tenants.create("acme")
    webhooks = platform.connectors.webhooks
    doc = {"url": "http://subscriber.invalid/hook"}
    queued = {
        await webhooks.enqueue(tenant.id, "crm", "out", doc, "record.created", {"n": i})
        for i in range(12)
    }
    batches = await asyncio.gather(*(webhooks.claim(5) for _ in range(4)))
    claimed = [d.id for batch in batches for d in batch]
    assert sorted(claimed) == sorted(queued)  # each once (SKIP LOCKED / BEGIN IMMEDIATE)
    assert await webhooks.claim(5) == []  # all leased: nothing is due until a lease expires
