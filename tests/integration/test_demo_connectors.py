"""The demo's connectors for real: a partner garage posts a signed repair estimate to the
claims app's `garage_estimates` webhook; the `garage_estimate` workflow it starts converts the
amount with the `fx_rates` http connector (imported from an OpenAPI document) and writes it on
the claim, or, when the rates service cannot be reached, takes its error path visibly. Claim
events queue for the `claim_events` webhook_out, whose failures show in its delivery log.
The connectors name paths on the platform's own server, which follow the port it serves on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from argon2 import PasswordHasher

from plinth.demo import HERE, TENANT, load_demo
from plinth.governance import identity
from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.integration import signing
from plinth.integration.egress import parse_allow
from plinth.integration.openapi import import_openapi
from plinth.server import Platform
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.extensions.conftest import (
    CACHE,
    components,  # noqa: F401  (plugins built once, cached)
)
from tests.helpers import free_port

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
OPERATOR = Principal("operator", "cli", frozenset({PLATFORM_ADMIN}), name="operator")
APP = f"/api/t/{TENANT}/apps/claims"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # No PLINTH_EGRESS_ALLOW (the suite allows loopback): what `plinth serve` does by default.
    # Not port 8000: the demo's connectors must follow the port actually served.
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        egress_allow="",
        plugin_cache_dir=CACHE / "compiled",
        port=free_port(),
        demo=True,
    )


@contextlib.asynccontextmanager
async def serving(platform: Platform) -> AsyncIterator[None]:
    """The platform's own server on its settings' port, in this event loop (as `plinth
    demo` serves it: the FX stand-in and the app's webhook endpoints included)."""
    from plinth.server.app import create_app

    config = uvicorn.Config(
        create_app(platform=platform),
        host="127.0.0.1",
        port=platform.settings.port,
        lifespan="off",  # the platform is started already
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task  # it could not bind: say why
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def _estimate(
    client: httpx.AsyncClient, secret: str, payload: dict[str, Any], delivery: str
) -> httpx.Response:
    """POST a garage estimate signed as a partner garage would (HMAC-SHA256)."""
    body = json.dumps(payload).encode()
    return await client.post(
        f"{APP}/hooks/garage_estimates",
        content=body,
        headers={
            "Content-Type": "application/json",
            signing.DELIVERY: delivery,
            signing.SIGNATURE: signing.signature(secret, int(time.time()), delivery, body),
        },
    )


async def _timeline(client: httpx.AsyncClient) -> list[tuple[str, str, str | None]]:
    [latest, *_] = (
        await client.get(
            f"/api/t/{TENANT}/workflow-instances", params={"workflow": "garage_estimate"}
        )
    ).json()
    inst = (await client.get(f"/api/t/{TENANT}/workflow-instances/{latest['id']}")).json()
    return [(s["node"], s["status"], s["error"]) for s in inst["timeline"]]


@SQLITE
@pytest.mark.usefixtures("components")  # the demo's plugin, built once into the shared cache
async def test_a_signed_garage_estimate_starts_the_workflow_and_updates_the_claim(
    platform: Platform, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With its plugin: the claims app's workflow calls the fraud scorer, so publishing the
    # app needs the plugin installed.
    monkeypatch.setattr(
        identity, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    lines = await load_demo(platform, OPERATOR, seed=False)
    here = f"http://127.0.0.1:{platform.settings.port}"
    assert f"connector fx_rates (http: convert) → {here}/demo/fx" in lines
    assert any(
        line.startswith(
            f"connector claim_events (webhook_out: record.created, record.updated) → {here}/"
        )
        for line in lines
    )
    [secret] = re.findall(
        r"connector garage_estimates \(webhook_in\) at POST \S+, starts "
        r"garage_estimate, signing secret: (\S+)",
        "\n".join(lines),
    )
    again = await load_demo(platform, OPERATOR, seed=False)  # idempotent, secret kept
    assert secret not in "\n".join(again)

    data = f"{APP}/data"
    holder = (
        await client.post(
            f"{data}/policyholder", json={"full_name": "Camille Martin", "country": "FR"}
        )
    ).json()
    policy = (
        await client.post(
            f"{data}/policy",
            json={
                "number": "FR-000001",
                "holder": holder["id"],
                "product": "home",
                "starts_on": "2026-01-01",
            },
        )
    ).json()
    r = await client.post(
        f"{data}/claim",
        json={
            "reference": "CL-1",
            "policy": policy["id"],
            "country": "FR",
            "incident_date": "2026-11-02",
            "description": "Hail damage on the car roof",
            "amount": "2400.00",
        },
    )
    assert r.status_code == 201, r.text
    claim = r.json()
    estimate = {
        "claim": claim["id"],
        "garage": "Garage Dupont",
        "amount": "1850.00",
        "currency": "USD",
    }

    # Unsigned or wrongly signed: refused, nothing starts.
    r = await _estimate(client, "not-the-secret", estimate, "est-0")
    assert r.status_code == 401 and secret not in r.text

    # The rates service is out of reach (here the SSRF guard refuses loopback, as under
    # `plinth serve` without PLINTH_EGRESS_ALLOW): the estimate is written unconverted and
    # the failed call shows in the instance's timeline.
    r = await _estimate(client, secret, estimate, "est-1")
    assert r.status_code == 202, r.text
    await platform.workflows.engine.drain()
    got = (await client.get(f"{data}/claim/{claim['id']}")).json()
    assert (
        got["repair_garage"],
        got["repair_estimate"],
        got["repair_currency"],
        got["repair_estimate_eur"],
    ) == ("Garage Dupont", "1850.00", "USD", None)
    [convert, *rest] = await _timeline(client)
    assert convert[:2] == ("convert", "failed") and "loopback" in (convert[2] or "")
    assert [s[:2] for s in rest] == [("unconverted", "completed"), ("done", "completed")]
    assert (await _estimate(client, secret, estimate, "est-1")).status_code == 409  # replay

    # The claim's creation and updates queued for claim_events; its subscriber is out of reach
    # the same way, which the delivery log says (not a silent drop).
    await platform.connectors.webhooks.run_due(limit=50)
    log = (await client.get(f"{APP}/connectors/claim_events/deliveries")).json()["items"]
    created = [d for d in log if d["topic"] == "record.created"]
    assert created and all(d["status"] == "dead" and "loopback" in d["last_error"] for d in created)

    # With the operator's egress allowance (as `plinth demo` sets it) and this server
    # listening on its port, the connectors' URLs (paths on this server) reach it: the
    # estimate is converted by the FX stand-in and claim events are delivered to event_inbox.
    platform.connectors.egress.allow = parse_allow("127.0.0.1/32")
    async with serving(platform):
        r = await _estimate(client, secret, {**estimate, "amount": "1080.00"}, "est-2")
        assert r.status_code == 202, r.text
        await platform.workflows.engine.drain()
        got = (await client.get(f"{data}/claim/{claim['id']}")).json()
        assert (got["repair_estimate"], got["repair_estimate_eur"]) == ("1080.00", "1000.00")
        assert [s[:2] for s in await _timeline(client)] == [
            ("convert", "completed"),
            ("estimate", "completed"),
            ("done", "completed"),
        ]
        await platform.connectors.webhooks.drain()
    log = (await client.get(f"{APP}/connectors/claim_events/deliveries")).json()["items"]
    updated = [d for d in log if d["topic"] == "record.updated"]
    assert updated and updated[0]["status"] == "delivered", updated[0]


def test_the_fx_connector_is_its_openapi_document_imported() -> None:
    document = yaml.safe_load((HERE / "fx_rates.openapi.yaml").read_text())
    base_url, operations = import_openapi(document)
    connector = yaml.safe_load((HERE / "claims" / "connectors" / "fx_rates.yaml").read_text())
    assert (connector["base_url"], connector["operations"]) == (base_url, operations)


@SQLITE
async def test_the_stand_in_is_served_only_in_demo_mode(platform: Platform) -> None:
    from plinth.server.app import create_app

    for demo in (False, True):
        platform.settings.demo = demo
        app = create_app(platform=platform)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://plinth.test"
        ) as c:
            r = await c.get("/demo/fx/convert", params={"from": "EUR", "to": "BRL", "amount": "10"})
        # Outside demo mode nothing answers as the service: a 404, or the web IDE's page
        # when the IDE is built (its catch-all serves every non-API path).
        is_stand_in = r.headers.get("content-type", "").startswith("application/json")
        assert is_stand_in == demo, r.text[:200]
    assert r.json()["result"] == "58.00" and "not market data" in r.json()["source"]
    platform.settings.demo = False
