"""Secrets never reach a log line, a response or an event: the OAuth2 client secret and the
access tokens it earns, a webhook's HMAC secret (out and in), through success and error paths,
with every logger at DEBUG and the access log on (the captured logs are grepped)."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest

from plinth.events import Event
from plinth.integration import signing
from plinth.server import Platform
from tests.integration.helpers import published
from tests.integration.remote import CLIENT_ID, CLIENT_SECRET, Remote

HOOK_SECRET = "whsec-never-logged-7731"
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_no_secret_in_any_log_line_response_or_event(
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    remote: Remote,
    platform: Platform,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[Event] = []

    async def keep(event: Event) -> None:
        events.append(event)

    platform.events.subscribe("*", keep)
    ops = {
        "secure": {"method": "GET", "path": "/secure"},
        "down": {"method": "GET", "path": "/down"},
    }
    connectors = {
        "svc": {
            "kind": "http",
            "base_url": remote.url,
            "operations": ops,
            "retries": 0,
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": f"{remote.url}/token",
                "client_id": CLIENT_ID,
                "client_secret": {"secret": "oauth"},
            },
        },
        "badclient": {
            "kind": "http",
            "base_url": remote.url,
            "operations": ops,
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": f"{remote.url}/token",
                "client_id": "nobody",
                "client_secret": {"secret": "oauth"},
            },
        },
        "out": {
            "kind": "webhook_out",
            "url": f"{remote.url}/hook",
            "max_attempts": 2,
            "backoff_seconds": 0,
            "secret": {"secret": "hook"},
        },
        "in": {"kind": "webhook_in", "secret": {"secret": "hook"}},
    }
    await published(
        client,
        "acme",
        "crm",
        {"connectors": connectors},
        secrets={"oauth": CLIENT_SECRET, "hook": HOOK_SECRET},
    )
    base = "/api/t/acme/apps/crm/connectors"
    bodies = []
    for name, op in (("svc", "secure"), ("svc", "down"), ("badclient", "secure")):
        bodies.append((await client.post(f"{base}/{name}/call", json={"operation": op})).text)
    remote.tokens_issued.clear()  # revoked: the refresh path runs too
    bodies.append((await client.post(f"{base}/svc/call", json={"operation": "secure"})).text)
    remote.hook_status = 500
    r = await client.post(
        f"{base}/out/call", json={"operation": "send", "input": {"topic": "record.created"}}
    )
    await platform.connectors.webhooks.drain()
    remote.hook_status = 200
    bodies.append(
        (await client.post(f"{base}/out/deliveries/{r.json()['delivery']}/redeliver")).text
    )
    bodies.append((await client.get(f"{base}/out/deliveries")).text)
    body = json.dumps({"n": 1}).encode()
    for secret in (HOOK_SECRET, "wrong-secret"):
        headers = {
            signing.SIGNATURE: signing.signature(secret, int(time.time()), "d-1", body),
            signing.DELIVERY: "d-1",
        }
        bodies.append(
            (await anon.post("/api/t/acme/apps/crm/hooks/in", content=body, headers=headers)).text
        )
    bodies.append((await client.get("/api/t/acme/audit")).text)

    tokens = [t for t in remote.token_log]
    assert len(tokens) == 2 and len(remote.hooks) == 3  # the paths above really ran
    assert any('"event":"http.access"' in m for m in caplog.messages)
    for value in (CLIENT_SECRET, HOOK_SECRET, *tokens):
        assert value not in caplog.text, value
        assert all(value not in b for b in bodies), value
        assert all(value not in repr(e.data) for e in events), value
