"""Small helpers for tests that drive the API."""

from __future__ import annotations

import socket
from typing import Any

import httpx

CLAIMS: dict[str, Any] = {
    "entities": {
        "policyholder": {
            "label": "Policyholder",
            "fields": {
                "full_name": {"type": "string", "required": True, "maxLength": 200},
                "email": {"type": "email"},
                "country": {"type": "string", "required": True, "minLength": 2, "maxLength": 2},
            },
        },
        "claim": {
            "label": "Claim",
            "fields": {
                "holder": {"type": "reference", "entity": "policyholder", "required": True},
                "amount": {"type": "decimal", "precision": 12, "scale": 2, "min": 0},
                "status": {
                    "type": "enum",
                    "values": ["open", "approved", "rejected"],
                    "default": "open",
                },
            },
        },
    }
}


async def make_tenant(client: httpx.AsyncClient, slug: str) -> dict[str, Any]:
    r = await client.post("/api/tenants", json={"slug": slug, "name": slug.title()})
    assert r.status_code == 201, r.text
    return r.json()


async def make_app(
    client: httpx.AsyncClient, tenant: str, slug: str, definition: dict[str, Any] | None = None
) -> dict[str, Any]:
    r = await client.post(f"/api/t/{tenant}/apps", json={"slug": slug})
    assert r.status_code == 201, r.text
    if definition is not None:
        r = await client.put(f"/api/t/{tenant}/apps/{slug}/draft", json=definition)
        assert r.status_code == 200, r.text
    return r.json()


async def token_for(client: httpx.AsyncClient, tenant: str, role: str) -> str:
    r = await client.post(f"/api/t/{tenant}/tokens", json={"name": f"{role}-key", "role": role})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def as_user(client: httpx.AsyncClient, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def publish(
    client: httpx.AsyncClient,
    tenant: str,
    app: str,
    definition: dict[str, Any] | None = None,
    **body: Any,
) -> httpx.Response:
    """Optionally replace the draft, then publish it; returns the publish response."""
    if definition is not None:
        r = await client.put(f"/api/t/{tenant}/apps/{app}/draft", json=definition)
        assert r.status_code == 200, r.text
    return await client.post(f"/api/t/{tenant}/apps/{app}/publish", json=body)


def run_cli(env: dict[str, str], *args: str, code: int = 0) -> str:
    """`plinth ARGS` run in this process with `env` set; returns what it printed.

    In-process because a fresh interpreter pays ~2 s of imports per command.
    """
    from typer.testing import CliRunner

    from plinth.cli.main import app

    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, f"{result.output}\n{result.exception!r}"
    return result.output


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def record_events(platform: Any, *events: Any) -> None:
    """Hand events to the effects as a record write's outbox does (audit entry, webhook
    deliveries, workflow starts), then to the bus."""
    from plinth.ids import new_id

    await platform.outbox.dispatch(platform.db, [(new_id(), e) for e in events])
    for event in events:
        await platform.events.publish(event)
