"""Service tasks and starts through the real services: records (runtime API, policies applied
to the workflow's actor, idempotent creates), a connector against a real HTTP service, the
fraud-scorer plugin in its sandbox, and a verified `webhook_in` delivery starting a workflow."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from plinth.integration import signing
from plinth.integration.openapi import import_openapi
from plinth.server import Platform
from plinth.settings import Settings
from plinth.workflows import steps
from plinth.workflows.advance import actor
from plinth.workflows.steps import StepContext
from tests.conftest import ADMIN_TOKEN
from tests.extensions.conftest import CACHE
from tests.extensions.conftest import install as install_plugin
from tests.extensions.conftest import publish as publish_plugin
from tests.helpers import make_app, make_tenant
from tests.integration.remote import Remote
from tests.workflows.conftest import ADMIN as ADMIN_PRINCIPAL
from tests.workflows.test_nodes import flow

DATA = "/api/t/acme/apps/claims/data"
ENTITIES = {
    "claim": {
        "fields": {
            "amount": {"type": "decimal", "precision": 12, "scale": 2, "min": 0},
            "status": {"type": "enum", "values": ["open", "approved", "closed"], "default": "open"},
        }
    },
    "payout": {
        "fields": {
            "claim": {"type": "reference", "entity": "claim", "required": True},
            "amount": {"type": "decimal", "precision": 12, "scale": 2, "min": 0},
        }
    },
}
# An app policy the workflow's actor is held to like anyone: closed claims are frozen.
FROZEN = {
    "cedar": '@id("closed_claims_are_frozen")\n'
    'forbid (principal, action == Action::"data.update", resource is claim)\n'
    'when { resource has status && resource.status == "closed" };'
}
PAY = flow(
    {
        "pay": {
            "type": "service_task",
            "action": "record.create",
            "entity": "payout",
            "input": {"claim": "vars.claim", "amount": "vars.amount"},
            "output": "payout",
            "next": "close",
        },
        "close": {
            "type": "service_task",
            "action": "record.update",
            "entity": "claim",
            "record_id": "vars.claim",
            "input": {"status": "'closed'"},
            "next": "e",
        },
        "e": {"type": "end"},
    },
    "pay",
)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The plugin's compiled artifact is shared with the extensions tests (compiling takes s).
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        plugin_cache_dir=CACHE / "compiled",
    )


async def _app(client: httpx.AsyncClient, definition: dict[str, Any]) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", definition)
    r = await client.post("/api/t/acme/apps/claims/publish", json={})
    assert r.status_code in (200, 201), r.text


async def _run(
    client: httpx.AsyncClient, platform: Platform, workflow: str, input: dict[str, Any]
) -> dict[str, Any]:
    r = await client.post(f"/api/t/acme/apps/claims/workflows/{workflow}/instances", json=input)
    assert r.status_code == 201, r.text
    await platform.workflows.engine.drain()
    r = await client.get(f"/api/t/acme/workflow-instances/{r.json()['id']}")
    return dict(r.json())


async def test_record_steps_go_through_the_runtime_as_the_workflow(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await _app(
        client, {"entities": ENTITIES, "policies": {"frozen": FROZEN}, "workflows": {"pay": PAY}}
    )
    claim = (await client.post(f"{DATA}/claim", json={"amount": "120.50"})).json()
    inst = await _run(client, platform, "pay", {"claim": claim["id"], "amount": "120.50"})
    assert inst["status"] == "completed", inst
    # The payout is a real record: the runtime API serves it, written by the workflow.
    [payout] = (await client.get(f"{DATA}/payout")).json()["items"]
    assert payout["id"] == inst["vars"]["payout"]["id"]
    assert (payout["claim"], payout["amount"]) == (claim["id"], "120.50")
    assert payout["created_by"] == "workflow pay"
    closed = (await client.get(f"{DATA}/claim/{claim['id']}")).json()
    assert closed["status"] == "closed" and closed["updated_by"] == "workflow pay"
    # The claim is closed now: the policy forbids the workflow to touch it again.
    again = await _run(client, platform, "pay", {"claim": claim["id"], "amount": "1.00"})
    assert again["status"] == "failed"
    [failed] = [s for s in again["timeline"] if s["node"] == "close"]
    assert "Forbidden" in failed["error"]
    assert (await client.get(f"{DATA}/claim/{claim['id']}")).json()["version"] == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_rerun_record_create_step_makes_one_record(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await _app(client, {"entities": ENTITIES, "workflows": {"pay": PAY}})
    claim = (await client.post(f"{DATA}/claim", json={"amount": "9.00"})).json()
    inst = await _run(client, platform, "pay", {"claim": claim["id"], "amount": "9.00"})
    step = inst["timeline"][0]
    tenant = await platform.tenants.get("acme")

    # What a worker killed after the insert but before recording the effect does next: the
    # step runs again with the same idempotency key and nothing remembered.
    async def forgetful(fn: Any) -> Any:
        return await fn(f"{inst['id']}:{step['id']}")

    ctx = StepContext(
        node="pay",
        spec=PAY["nodes"]["pay"],
        vars=inst["vars"],
        record=None,
        instance={"app": "claims"},
        step_id=step["id"],
        attempt=2,
        tasks=[],
        effect=forgetful,
        services=platform,
        tenant=tenant,
        principal=actor(inst["id"], tenant.id, "pay"),
    )
    outcome = await steps.get("service_task").run(ctx)
    assert outcome.vars["payout"]["id"] == inst["vars"]["payout"]["id"]
    assert len((await client.get(f"{DATA}/payout")).json()["items"]) == 1


async def test_connector_step_calls_a_real_http_service(
    client: httpx.AsyncClient, platform: Platform, remote: Remote
) -> None:
    _, operations = import_openapi(remote.openapi())  # inputs refuse unknown properties
    operations["notify"] = {"method": "POST", "path": "/hook", "body": True}
    pets = {"kind": "http", "base_url": remote.url, "operations": operations}
    await _app(
        client,
        {
            "connectors": {"pets": pets},
            "workflows": {
                "adopt": flow(
                    {
                        "create": {
                            "type": "service_task",
                            "action": "connector",
                            "connector": "pets",
                            "operation": "createPet",
                            "input": {"body": "{'name': vars.name, 'tag': 'cat'}"},
                            "output": "pet",
                            "next": "notify",
                        },
                        "notify": {
                            "type": "service_task",
                            "action": "connector",
                            "connector": "pets",
                            "operation": "notify",
                            "input": {"body": "{'pet': vars.pet.body.id}"},
                            "next": "e",
                        },
                        "e": {"type": "end"},
                    },
                    "create",
                )
            },
        },
    )
    inst = await _run(client, platform, "adopt", {"name": "Tom"})
    assert inst["status"] == "completed", inst
    assert inst["vars"]["pet"] == {"status": 201, "body": {"id": 2, "name": "Tom", "tag": "cat"}}
    assert remote.pets[2]["name"] == "Tom"
    [hook] = remote.hooks
    assert json.loads(hook["body"]) == {"pet": 2}
    step = inst["timeline"][1]
    assert hook["headers"]["Idempotency-Key"] == f"{inst['id']}:{step['id']}"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_plugin_step_runs_the_fraud_scorer(
    client: httpx.AsyncClient, platform: Platform, components: dict[str, Path]
) -> None:
    def scoring(operation: str) -> dict[str, Any]:
        return {
            "workflows": {
                "score": flow(
                    {
                        "score": {
                            "type": "service_task",
                            "action": "plugin",
                            "plugin": "fraud-scorer",
                            "operation": operation,
                            "output": "fraud",
                            "next": "e",
                            "input": {
                                "amount": "double(vars.amount)",
                                "country": "vars.country",
                                "description": "vars.description",
                            },
                        },
                        "e": {"type": "end"},
                    },
                    "score",
                )
            }
        }

    # The plugin is installed per tenant: publishing a workflow that calls it before the
    # tenant installed it is refused, with the path of the step.
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", scoring("score"))
    r = await client.post("/api/t/acme/apps/claims/publish", json={})
    assert r.status_code == 422, r.text
    [fault] = r.json()["errors"]
    assert (fault["path"], fault["code"]) == ("workflows.score.nodes.score.plugin", "not_installed")
    await publish_plugin(platform, components, "fraud-scorer")
    await install_plugin(platform, "acme", "fraud-scorer")
    # An action the installed version does not provide is refused too.
    assert (
        await client.put("/api/t/acme/apps/claims/draft", json=scoring("rate"))
    ).status_code == 200
    r = await client.post("/api/t/acme/apps/claims/publish", json={})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == "workflows.score.nodes.score.operation"
    assert "provides: score" in r.json()["errors"][0]["message"]
    assert (
        await client.put("/api/t/acme/apps/claims/draft", json=scoring("score"))
    ).status_code == 200
    r = await client.post("/api/t/acme/apps/claims/publish", json={})
    assert r.status_code == 201, r.text
    inst = await _run(
        client,
        platform,
        "score",
        {"amount": 60000, "country": "FR", "description": "Stolen car, cash only please"},
    )
    assert inst["status"] == "completed", inst
    assert inst["vars"]["fraud"] == {
        "score": 70,
        "level": "high",
        "reasons": [
            "amount above 50,000",
            "round amount",
            "mentions 'cash only'",
            "mentions 'stolen'",
        ],
    }
    [call] = (await platform.plugins.metering("acme"))["calls"]
    assert (call["plugin"], call["point"], call["target"], call["outcome"]) == (
        "fraud-scorer",
        "action",
        "score",
        "ok",
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_verified_webhook_delivery_starts_the_workflow(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    secret = "whsec-inbound-0123456789"
    nodes = {
        "a": {"type": "assign", "set": {"order": "vars.payload.order"}, "next": "e"},
        "e": {"type": "end"},
    }
    hook = {"kind": "webhook_in", "secret": {"secret": "inbound"}}
    bad = {"first": "a", "start": [{"type": "webhook", "connector": "nope"}], "nodes": nodes}
    await make_tenant(client, "acme")
    r = await client.put("/api/t/acme/secrets/inbound", json={"value": secret})
    assert r.status_code == 200, r.text
    await make_app(client, "acme", "claims")
    r = await client.put(
        "/api/t/acme/apps/claims/draft",
        json={"connectors": {"orders": hook}, "workflows": {"bad": bad}},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "workflows.bad.start[0].connector"
    r = await client.put(
        "/api/t/acme/apps/claims/draft",
        json={
            "connectors": {"orders": hook},
            "workflows": {
                "on_order": {**bad, "start": [{"type": "webhook", "connector": "orders"}]},
                "other": {**bad, "start": [{"type": "manual"}]},
            },
        },
    )
    assert r.status_code == 200, r.text
    assert (await client.post("/api/t/acme/apps/claims/publish", json={})).status_code in (200, 201)

    body = json.dumps({"order": 42}).encode()
    headers = {
        signing.SIGNATURE: signing.signature(secret, int(time.time()), "d-1", body),
        signing.DELIVERY: "d-1",
        "Content-Type": "application/json",
    }
    r = await anon.post("/api/t/acme/apps/claims/hooks/orders", content=body, headers=headers)
    assert r.status_code == 202, r.text
    await platform.workflows.engine.drain()
    [inst] = (await client.get("/api/t/acme/workflow-instances")).json()
    assert (inst["workflow"], inst["status"], inst["started_by"]) == (
        "on_order",
        "completed",
        "webhook:orders",
    )
    got = (await client.get(f"/api/t/acme/workflow-instances/{inst['id']}")).json()
    assert got["vars"]["order"] == 42 and got["vars"]["delivery"] == "d-1"
    # A replayed delivery is refused at the door and starts nothing.
    r = await anon.post("/api/t/acme/apps/claims/hooks/orders", content=body, headers=headers)
    assert r.status_code == 409
    assert len((await client.get("/api/t/acme/workflow-instances")).json()) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_run_as_acts_as_a_least_privileged_role(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    # An unknown role is refused at publish, with its path.
    bad = {**PAY, "run_as": {"role": "nobody"}}
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", {"entities": ENTITIES})
    r = await client.put(
        "/api/t/acme/apps/claims/draft", json={"entities": ENTITIES, "workflows": {"pay": bad}}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "workflows.pay.run_as.role"
    # A viewer may read but not write: the payout step fails on the policy, nothing is written.
    viewer = {**PAY, "run_as": {"role": "viewer"}}
    # A step may widen it again: this one acts as the owner.
    owner_pay = copy.deepcopy(viewer)
    owner_pay["nodes"]["pay"]["run_as"] = {"role": "owner"}
    r = await client.put(
        "/api/t/acme/apps/claims/draft",
        json={"entities": ENTITIES, "workflows": {"pay": viewer, "owner_pay": owner_pay}},
    )
    assert r.status_code == 200, r.text
    assert (await client.post("/api/t/acme/apps/claims/publish", json={})).status_code == 201
    claim = (await client.post(f"{DATA}/claim", json={"amount": "5.00"})).json()
    inst = await _run(client, platform, "pay", {"claim": claim["id"], "amount": "5.00"})
    assert inst["status"] == "failed"
    [failed] = [s for s in inst["timeline"] if s["node"] == "pay"]
    assert failed["status"] == "failed" and failed["error"].startswith("Forbidden")
    assert (await client.get(f"{DATA}/payout")).json()["items"] == []
    # The owner step creates the payout; the close step (workflow default: viewer) is refused.
    inst = await _run(client, platform, "owner_pay", {"claim": claim["id"], "amount": "5.00"})
    assert [(s["node"], s["status"]) for s in inst["timeline"]] == [
        ("pay", "completed"),
        ("close", "failed"),
    ]
    assert "Forbidden" in inst["timeline"][1]["error"]
    assert len((await client.get(f"{DATA}/payout")).json()["items"]) == 1
    assert (await client.get(f"{DATA}/claim/{claim['id']}")).json()["status"] == "open"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_each_apps_inbox_lists_its_own_tasks(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    def review(title: str, key: str | None = None) -> dict[str, Any]:
        doc = flow(
            {
                "review": {
                    "type": "user_task",
                    "title": title,
                    "assignee": {"role": "analyst"},
                    "next": "e",
                },
                "e": {"type": "end"},
            },
            "review",
        )
        return {**doc, "key": key} if key else doc

    await make_tenant(client, "acme")
    await make_app(
        client,
        "acme",
        "claims",
        {
            "workflows": {
                "intake": review("Check the claim", "'CLM-' + string(vars.number)"),
                "audit": review("Audit the claim"),
            }
        },
    )
    await make_app(client, "acme", "hr", {"workflows": {"intake": review("Welcome aboard")}})
    for app in ("claims", "hr"):
        assert (await client.post(f"/api/t/acme/apps/{app}/publish", json={})).status_code == 201
    for app, workflow in (("claims", "intake"), ("claims", "audit"), ("hr", "intake")):
        r = await client.post(
            f"/api/t/acme/apps/{app}/workflows/{workflow}/instances", json={"number": 7}
        )
        assert r.status_code == 201, r.text
    await platform.workflows.engine.drain()

    async def inbox(query: str) -> list[tuple[str, str, str | None, str]]:
        r = await client.get(f"/api/t/acme/tasks{query}")
        assert r.status_code == 200, r.text
        return sorted((t["app"], t["workflow"], t["business_key"], t["title"]) for t in r.json())

    assert await inbox("?app=claims") == [
        ("claims", "audit", None, "Audit the claim"),
        ("claims", "intake", "CLM-7", "Check the claim"),
    ]
    assert await inbox("?app=hr") == [("hr", "intake", None, "Welcome aboard")]
    assert await inbox("?app=claims&workflow=intake") == [
        ("claims", "intake", "CLM-7", "Check the claim")
    ]
    assert len(await inbox("")) == 3  # "my tasks" across the tenant's apps
    [inst] = (await client.get("/api/t/acme/workflow-instances?workflow=intake&app=claims")).json()
    assert inst["business_key"] == "CLM-7"


async def test_a_webhook_start_is_recorded_with_the_delivery(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform, settings: Settings
) -> None:
    secret = "whsec-inbound-0123456789"
    await make_tenant(client, "acme")
    assert (
        await client.put("/api/t/acme/secrets/inbound", json={"value": secret})
    ).status_code == 200
    await make_app(
        client,
        "acme",
        "claims",
        {
            "connectors": {"orders": {"kind": "webhook_in", "secret": {"secret": "inbound"}}},
            "workflows": {
                "on_order": {
                    "first": "a",
                    "start": [{"type": "webhook", "connector": "orders"}],
                    "nodes": {
                        "a": {
                            "type": "assign",
                            "set": {"order": "vars.payload.order"},
                            "next": "e",
                        },
                        "e": {"type": "end"},
                    },
                }
            },
        },
    )
    assert (await client.post("/api/t/acme/apps/claims/publish", json={})).status_code == 201
    body = json.dumps({"order": 7}).encode()

    def send() -> Any:
        headers = {
            signing.SIGNATURE: signing.signature(secret, int(time.time()), "d-7", body),
            signing.DELIVERY: "d-7",
            "Content-Type": "application/json",
        }
        return anon.post("/api/t/acme/apps/claims/hooks/orders", content=body, headers=headers)

    # One transaction: when acting on the delivery fails after the workflow's start was
    # written, the receipt goes too, so the sender's retry is accepted (not a "replay").
    async def broken(conn: Any, tenant: Any, delivery: dict[str, Any]) -> list[Any]:
        raise RuntimeError("the disk is full")

    platform.connectors.on_webhook(broken)
    with pytest.raises(RuntimeError):
        await send()
    platform.connectors.webhooks.receivers.remove(broken)
    assert (await client.get("/api/t/acme/workflow-instances")).json() == []
    assert (r := await send()).status_code == 202, r.text
    # The platform that accepted it stops before any worker ran; another one finishes it.
    [inst] = (await client.get("/api/t/acme/workflow-instances")).json()
    assert inst["status"] == "running"
    await platform.stop()
    other = Platform(settings)
    await other.start()
    try:
        await other.workflows.engine.drain()
        tenant = await other.tenants.get("acme")
        done = await other.workflows.instance(tenant, inst["id"], ADMIN_PRINCIPAL)
    finally:
        await other.stop()
    assert done["status"] == "completed" and done["vars"]["order"] == 7
