"""A task decided or an instance steered commits with its ledger entry: both, or neither."""

from __future__ import annotations

import httpx

from plinth.server import Platform
from tests.helpers import as_user, make_tenant, refusing, token_for
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
