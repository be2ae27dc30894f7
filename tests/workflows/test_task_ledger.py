"""A task decided or an instance steered commits with its ledger entry: both, or neither."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from plinth.db import MAX_OVERFLOW, POOL_SIZE
from plinth.server import Platform
from tests.helpers import as_user, make_tenant, refusing, token_for
from tests.integration.helpers import published
from tests.integration.remote import Remote
from tests.workflows.test_nodes import flow


async def test_a_decision_the_ledger_cannot_record_leaves_the_task_open(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    await client.post("/api/t/acme/apps", json={"slug": "ok"})
    nodes = {
        "vote": {"type": "approval", "approvers": [{"role": "analyst"}], "next": "e"},
        "e": {"type": "end"},
    }
    await client.put("/api/t/acme/apps/ok/draft", json={"workflows": {"w": flow(nodes, "vote")}})
    assert (await client.post("/api/t/acme/apps/ok/publish", json={})).status_code in (200, 201)
    analyst = as_user(client, await token_for(client, "acme", "analyst"))
    r = await client.post("/api/t/acme/apps/ok/workflows/w/instances", json={}, headers=analyst)
    iid = r.json()["id"]
    await platform.workflows.engine.drain()
    [task] = (await client.get("/api/t/acme/tasks", headers=analyst)).json()

    async with refusing(platform, "workflow.suspend"):
        r = await client.post(f"/api/t/acme/workflow-instances/{iid}/suspend")
    assert r.status_code == 503 and r.json()["code"] == "audit_unavailable", r.text
    assert (await client.get(f"/api/t/acme/workflow-instances/{iid}")).json()["status"] == (
        "running"
    )

    async with refusing(platform, "task.approved"):
        r = await client.post(
            f"/api/t/acme/tasks/{task['id']}/decide",
            json={"decision": "approved"},
            headers=analyst,
        )
    assert r.status_code == 503 and r.json()["code"] == "audit_unavailable", r.text
    await platform.workflows.engine.drain()
    assert [t["id"] for t in (await client.get("/api/t/acme/tasks", headers=analyst)).json()] == [
        task["id"]
    ]
    assert (await client.get(f"/api/t/acme/workflow-instances/{iid}")).json()["status"] == (
        "running"
    )

    r = await client.post(
        f"/api/t/acme/tasks/{task['id']}/decide", json={"decision": "approved"}, headers=analyst
    )
    assert r.status_code == 200, r.text
    await platform.workflows.engine.drain()
    assert (await client.get(f"/api/t/acme/workflow-instances/{iid}")).json()["status"] == (
        "completed"
    )
    entries = await platform.governance.audit.list(tid, limit=1000)
    actions = [e["action"] for e in entries]
    assert actions.count("task.approved") == 1 and "workflow.suspend" not in actions
    # the decision is in the ledger before the instance's end it caused
    assert actions.index("task.approved") < actions.index("workflow.completed")
    assert (await platform.governance.audit.verify(tid)).ok


async def test_a_burst_of_instance_control_after_a_publish_does_not_stall_the_node(
    client: httpx.AsyncClient, platform: Platform, remote: Remote
) -> None:
    """More audited changes of one tenant at once than the pool has connections, while its
    webhook subscribers are not cached (a publish just dropped them): each queues its
    deliveries reading them in its own transaction. Read through a second pooled connection,
    the change holding the tenant's ledger lock waited for one that the others, waiting for
    that lock, held: on PostgreSQL every request failed after 30 s (504)."""
    nodes = {
        "vote": {"type": "approval", "approvers": [{"role": "analyst"}], "next": "e"},
        "e": {"type": "end"},
    }
    hook = {
        "kind": "webhook_out",
        "url": f"{remote.url}/hook",
        "events": ["workflow.suspend"],
        "secret": {"secret": "hook"},
    }
    definition = {"workflows": {"w": flow(nodes, "vote")}, "connectors": {"out": hook}}
    await published(client, "acme", "ok", definition, secrets={"hook": "whsec-0123456789abcdef"})
    analyst = as_user(client, await token_for(client, "acme", "analyst"))
    n = POOL_SIZE + MAX_OVERFLOW + 8
    iids = []
    for _ in range(n):
        r = await client.post("/api/t/acme/apps/ok/workflows/w/instances", json={}, headers=analyst)
        iids.append(r.json()["id"])
    await platform.workflows.engine.drain()
    await client.post("/api/t/acme/apps", json={"slug": "other"})
    assert (await client.post("/api/t/acme/apps/other/publish", json={})).status_code == 201

    began = time.monotonic()
    answers = await asyncio.gather(
        *(client.post(f"/api/t/acme/workflow-instances/{i}/suspend") for i in iids)
    )
    took = time.monotonic() - began
    assert [r.status_code for r in answers] == [200] * n, answers[0].text
    assert took < 10, took
    r = await client.get("/api/t/acme/apps/ok/connectors/out/deliveries", params={"limit": 500})
    assert len(r.json()["items"]) == n  # each suspension queued its delivery
    tid = (await platform.tenants.get("acme")).id
    actions = [e["action"] for e in await platform.governance.audit.list(tid, limit=1000)]
    assert actions.count("workflow.suspend") == n
    assert (await platform.governance.audit.verify(tid)).ok


async def test_an_instance_change_refused_for_its_ledger_entry_says_why_in_the_log(
    client: httpx.AsyncClient, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    """The 503 tells the caller only to retry: the operator finds which entry the ledger did
    not take, and why, in the log (as for every other change the ledger refuses)."""
    await make_tenant(client, "acme")
    await client.post("/api/t/acme/apps", json={"slug": "ok"})
    nodes = {
        "vote": {"type": "approval", "approvers": [{"role": "analyst"}], "next": "e"},
        "e": {"type": "end"},
    }
    await client.put("/api/t/acme/apps/ok/draft", json={"workflows": {"w": flow(nodes, "vote")}})
    assert (await client.post("/api/t/acme/apps/ok/publish", json={})).status_code == 201
    analyst = as_user(client, await token_for(client, "acme", "analyst"))
    r = await client.post("/api/t/acme/apps/ok/workflows/w/instances", json={}, headers=analyst)
    iid = r.json()["id"]
    await platform.workflows.engine.drain()
    caplog.clear()
    async with refusing(platform, "workflow.suspend"):
        r = await client.post(f"/api/t/acme/workflow-instances/{iid}/suspend")
    assert r.status_code == 503 and r.json()["code"] == "audit_unavailable", r.text
    said = [m.getMessage() for m in caplog.records if m.levelno >= logging.ERROR]
    assert any("workflow.suspend" in m and "ledger refuses" in m for m in said), said


async def test_an_instances_control_events_reach_only_its_own_apps_webhooks(
    client: httpx.AsyncClient, platform: Platform, remote: Remote
) -> None:
    """An instance suspended or resumed (and a task's events) names its app: that app's
    `workflow.*` webhook hears it, another app's in the same tenant does not."""
    nodes = {
        "vote": {"type": "approval", "approvers": [{"role": "analyst"}], "next": "e"},
        "e": {"type": "end"},
    }
    hook = {
        "kind": "webhook_out",
        "url": f"{remote.url}/hook",
        "events": ["workflow.*"],
        "secret": {"secret": "hook"},
    }
    secrets = {"hook": "whsec-0123456789abcdef"}
    mine = {"workflows": {"w": flow(nodes, "vote")}, "connectors": {"out": hook}}
    await published(client, "acme", "ok", mine, secrets=secrets)
    other = {"connectors": {"out": hook}}
    await published(client, "acme", "other", other, secrets=secrets, new_tenant=False)
    analyst = as_user(client, await token_for(client, "acme", "analyst"))
    r = await client.post("/api/t/acme/apps/ok/workflows/w/instances", json={}, headers=analyst)
    iid = r.json()["id"]
    await platform.workflows.engine.drain()
    for action in ("suspend", "resume"):
        r = await client.post(f"/api/t/acme/workflow-instances/{iid}/{action}")
        assert r.status_code == 200, r.text
    await platform.workflows.engine.drain()

    async def topics(app: str) -> list[str]:
        r = await client.get(
            f"/api/t/acme/apps/{app}/connectors/out/deliveries", params={"limit": 500}
        )
        return sorted(d["topic"] for d in r.json()["items"])

    assert await topics("ok") == ["workflow.resume", "workflow.started", "workflow.suspend"]
    assert await topics("other") == []
