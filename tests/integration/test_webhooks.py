"""Webhooks out (signed, retried, logged, redelivered) and in (verified, replay refused,
publishing webhook.received) against a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import time

import httpx

from plinth.events import Event
from plinth.integration import signing
from plinth.server import Platform
from tests.integration.helpers import published
from tests.integration.remote import Remote

HOOK_SECRET = "whsec-very-secret-123"


async def test_record_events_are_delivered_signed(client: httpx.AsyncClient, remote: Remote,
                                                  platform: Platform) -> None:
    doc = {"kind": "webhook_out", "url": f"{remote.url}/hook", "events": ["record.created"],
           "secret": {"secret": "hook"}}
    await published(client, "acme", "crm", {"connectors": {"out": doc}},
                    secrets={"hook": HOOK_SECRET})
    tenant = await platform.tenants.get("acme")
    await platform.events.publish(Event("record.created", tenant.id,
                                        {"app": "crm", "entity": "claim", "id": "r1"}))
    await platform.events.publish(Event("record.deleted", tenant.id, {"app": "crm"}))
    await platform.events.publish(Event("record.created", tenant.id, {"app": "other"}))
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


async def test_failed_deliveries_retry_then_redeliver(client: httpx.AsyncClient,
                                                      remote: Remote) -> None:
    doc = {"kind": "webhook_out", "url": f"{remote.url}/hook", "secret": {"secret": "hook"},
           "max_attempts": 3, "backoff_seconds": 0.01}
    await published(client, "acme", "crm", {"connectors": {"out": doc}},
                    secrets={"hook": HOOK_SECRET})
    remote.hook_status = 500
    r = await client.post("/api/t/acme/apps/crm/connectors/out/call",
                          json={"operation": "send", "input": {"topic": "record.updated",
                                                               "data": {"n": 1}}})
    assert r.status_code == 200, r.text
    delivery_id = r.json()["delivery"]
    platform: Platform = client._transport.app.state.platform  # type: ignore[attr-defined]
    await platform.connectors.webhooks.drain()
    r = await client.get("/api/t/acme/apps/crm/connectors/out/deliveries")
    [logged] = r.json()["items"]
    assert (logged["status"], logged["attempts"], logged["last_status"]) == ("failed", 3, 500)
    assert len(remote.hooks) == 3
    remote.hook_status = 200
    r = await client.post(f"/api/t/acme/apps/crm/connectors/out/deliveries/{delivery_id}/"
                          "redeliver")
    assert r.status_code == 200 and r.json()["status"] == "delivered"
    assert r.json()["attempts"] == 4
    # The redelivery carries the same id (receivers dedupe on it) and a fresh signature.
    ids = {h["headers"]["Plinth-Delivery"] for h in remote.hooks}
    assert ids == {delivery_id}
    assert remote.hooks[-1]["body"] == remote.hooks[0]["body"]


async def test_incoming_webhooks_verify_refuse_replays_and_start_work(
        client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform) -> None:
    doc = {"kind": "webhook_in", "secret": {"secret": "inbound"}, "tolerance_seconds": 60}
    await published(client, "acme", "crm", {"connectors": {"orders": doc}},
                    secrets={"inbound": HOOK_SECRET})
    received: list[Event] = []

    async def keep(event: Event) -> None:
        received.append(event)

    platform.events.subscribe("webhook.received", keep)
    url = "/api/t/acme/apps/crm/hooks/orders"
    body = json.dumps({"order": 42}).encode()

    def signed(delivery: str, at: int | None = None, secret: str = HOOK_SECRET) -> dict:
        stamp = int(time.time()) if at is None else at
        return {signing.SIGNATURE: signing.signature(secret, stamp, delivery, body),
                signing.DELIVERY: delivery, "Content-Type": "application/json"}

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
