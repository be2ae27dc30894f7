"""Small helpers for tests that drive the API."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import sqlalchemy as sa

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


@asynccontextmanager
async def refusing(platform: Any, action: str) -> AsyncIterator[None]:
    """While inside: the database refuses every ledger entry of `action`."""
    async with platform.db.transaction() as conn:
        if platform.db.dialect == "postgresql":
            await conn.execute(
                sa.text(
                    "CREATE FUNCTION audit_refuses() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.action = '{action}' THEN RAISE EXCEPTION 'ledger refuses'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER audit_refuses BEFORE INSERT ON audit_events "
                    "FOR EACH ROW EXECUTE FUNCTION audit_refuses()"
                )
            )
        else:
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER audit_refuses BEFORE INSERT ON audit_events "
                    f"WHEN NEW.action = '{action}' BEGIN SELECT RAISE(ABORT, 'ledger refuses'); END"
                )
            )
    try:
        yield
    finally:
        async with platform.db.transaction() as conn:
            if platform.db.dialect == "postgresql":
                await conn.execute(sa.text("DROP TRIGGER audit_refuses ON audit_events"))
                await conn.execute(sa.text("DROP FUNCTION audit_refuses()"))
            else:
                await conn.execute(sa.text("DROP TRIGGER audit_refuses"))
