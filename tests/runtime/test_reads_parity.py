"""The lean data routes (runtime/reads.py) answer exactly as the FastAPI routes they stand in
for: the same status and JSON for the same request, whatever the caller and the input. A
parameter given twice (the same value), or any query string on a create, sends a request to
the FastAPI route, so each request is asked of both."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from plinth.server import Platform
from tests.helpers import CLAIMS, as_user, make_app, make_tenant, publish, token_for

APP: dict[str, Any] = {
    "entities": {
        **CLAIMS["entities"],
        "card": {
            "fields": {
                "label": {"type": "string"},
                "pan": {
                    "type": "string",
                    "classification": "pci.pan",
                    "masked": True,
                    "encrypted": True,
                },
            },
            "retention": {"days": 365, "action": "delete"},
            "audit_reads": True,
        },
    }
}


async def _people(client: httpx.AsyncClient) -> tuple[dict[str, str], ...]:
    """Tenant `acme` with the app published, and the headers of its owner, a viewer of it
    and another tenant's owner."""
    await make_tenant(client, "acme")
    await make_tenant(client, "other")
    await make_app(client, "acme", "crm")
    r = await publish(client, "acme", "crm", APP)
    assert r.status_code in (200, 201), r.text
    owner = as_user(client, await token_for(client, "acme", "owner"))
    viewer = as_user(client, await token_for(client, "acme", "viewer"))
    stranger = as_user(client, await token_for(client, "other", "owner"))
    return owner, viewer, stranger


def _both(query: str) -> tuple[str, str]:
    """`query` for the lean route, and the same for the FastAPI route (a name twice)."""
    twice = query or "limit=50"
    return (f"?{query}" if query else ""), f"?{twice}&{twice}"


def _shape(r: httpx.Response) -> tuple[int, Any]:
    ctype = r.headers.get("content-type", "")
    assert "json" in ctype, (r.status_code, ctype, r.text[:200])
    body = r.json()
    if isinstance(body, dict):
        body.pop("request_id", None)
        body.pop("instance", None)
        if body.get("next_cursor"):  # sealed with a fresh nonce each time
            body["next_cursor"] = "…"
    return r.status_code, body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_lean_and_fastapi_reads_agree(client: httpx.AsyncClient, platform: Platform) -> None:
    owner, viewer, stranger = await _people(client)
    data = "/api/t/acme/apps/crm/data"
    h = await client.post(
        f"{data}/policyholder", headers=owner, json={"full_name": "Ana é", "country": "DE"}
    )
    assert h.status_code == 201, h.text
    for amount in ("1.00", "2.50", "3.75"):
        c = await client.post(
            f"{data}/claim", headers=owner, json={"holder": h.json()["id"], "amount": amount}
        )
        assert c.status_code == 201, c.text
    await client.post(f"{data}/card", headers=owner, json={"label": "x", "pan": "4111111111111111"})
    cases = [
        (owner, "claim", ""),
        (owner, "claim", "filter=amount gt 2"),
        (owner, "claim", "filter=amount gt"),
        (owner, "claim", "filter=nope eq 1"),
        (owner, "claim", "filter=" + "(" * 300 + "amount gt 1" + ")" * 300),
        (owner, "claim", "sort=-amount"),
        (owner, "claim", "fields=amount,nope"),
        (owner, "claim", "expand=holder"),
        (owner, "claim", "limit=2"),
        (owner, "claim", "limit=0"),
        (owner, "claim", "cursor=%FF%FE"),
        (owner, "policyholder", "filter=full_name eq 'Ana %C3%A9'"),
        (viewer, "card", ""),
        (viewer, "card", "filter=pan eq '4111111111111111'"),
        (viewer, "card", "sort=pan"),
        (viewer, "nope", ""),
        (stranger, "claim", ""),
        ({"Authorization": "Basic x"}, "claim", ""),
    ]
    failures = []
    for headers, entity, q in cases:
        lean_q, fast_q = _both(q)
        a = await client.get(f"{data}/{entity}{lean_q}", headers=headers)
        b = await client.get(f"{data}/{entity}{fast_q}", headers=headers)
        if a.status_code >= 500 or b.status_code >= 500 or _shape(a) != _shape(b):
            failures.append((entity, q[:60], a.status_code, a.text[:300], b.text[:300]))
    # One record (no FastAPI twin to ask): masked for the viewer, refused to a stranger.
    cid = (await client.get(f"{data}/card", headers=owner)).json()["items"][0]["id"]
    seen = await client.get(f"{data}/card/{cid}", headers=viewer)
    assert seen.status_code == 200 and seen.json()["pan"] != "4111111111111111", seen.text
    refused = await client.get(f"{data}/card/{cid}", headers=stranger)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert not failures, "\n".join(repr(f)[:600] for f in failures)


def _created(r: httpx.Response) -> tuple[int, Any, str | None]:
    """A create's answer without what differs per record (id, time stamps)."""
    status, body = _shape(r)
    for item in body if isinstance(body, list) else [body]:
        if isinstance(item, dict) and status == 201:
            for key in ("id", "created_at", "updated_at"):
                item[key] = "…"
    return status, body, r.headers.get("etag")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_lean_and_fastapi_creates_agree(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    owner, viewer, stranger = await _people(client)
    data = "/api/t/acme/apps/crm/data"
    holder = {"full_name": "Ana é", "country": "DE"}
    h = await client.post(f"{data}/policyholder", headers=owner, json=holder)
    assert h.status_code == 201, h.text
    cases: list[tuple[dict[str, str], str, Any]] = [
        (owner, "policyholder", holder),
        (owner, "policyholder", [holder, {**holder, "email": "a@example.com"}]),
        (owner, "policyholder", [holder, {"full_name": 3}]),
        (owner, "policyholder", []),
        (owner, "policyholder", {"country": "DEU"}),
        (owner, "policyholder", {**holder, "id": "mine", "version": 7}),
        (owner, "policyholder", "not an object"),
        (owner, "claim", {"holder": h.json()["id"], "amount": "2.50"}),
        (owner, "claim", {"holder": "nobody", "amount": "2.50"}),
        (owner, "card", {"label": "x", "pan": "4111111111111111"}),
        (owner, "nope", holder),
        (viewer, "policyholder", holder),
        (stranger, "policyholder", holder),
        ({"Authorization": "Basic x"}, "policyholder", holder),
    ]
    failures = []
    for headers, entity, body in cases:
        a = await client.post(f"{data}/{entity}", headers=headers, json=body)
        b = await client.post(f"{data}/{entity}?via=fastapi", headers=headers, json=body)
        if a.status_code >= 500 or b.status_code >= 500 or _created(a) != _created(b):
            failures.append((entity, body, a.status_code, a.text[:300], b.text[:300]))
    for raw in (b"", b"{", b'{"full_name": NaN}'):
        a = await client.post(f"{data}/policyholder", headers=owner, content=raw)
        b = await client.post(f"{data}/policyholder?via=fastapi", headers=owner, content=raw)
        if _created(a) != _created(b):
            failures.append(("raw", raw, a.status_code, a.text[:300], b.text[:300]))
    assert not failures, "\n".join(repr(f)[:600] for f in failures)
