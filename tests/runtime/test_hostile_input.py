"""Crafted input never makes a 5xx: each attack is a 4xx problem+json naming where it is."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from plinth.server import Platform
from tests.helpers import make_app, make_tenant, publish

APP = {
    "entities": {
        "holder": {"fields": {"name": {"type": "string", "required": True}}},
        "claim": {
            "fields": {
                "reference": {"type": "string", "required": True},
                "holder": {"type": "reference", "entity": "holder"},
                "amount": {"type": "decimal", "precision": 12, "scale": 2, "min": 0},
                "fraud_score": {"type": "integer"},
                "evidence": {"type": "json"},
                "notes": {"type": "text"},
            }
        },
    }
}
BASE = "/api/t/acme/apps/claims/data"


@pytest.fixture
async def claims(client: httpx.AsyncClient) -> dict[str, Any]:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    assert (await publish(client, "acme", "claims", APP)).status_code == 201
    holder = (await client.post(f"{BASE}/holder", json={"name": "Maria"})).json()
    r = await client.post(
        f"{BASE}/claim", json={"reference": "C-1", "holder": holder["id"], "amount": "10.00"}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _problem(
    r: httpx.Response, status: int, path: str | None = None, what: str = ""
) -> dict[str, Any]:
    assert r.status_code == status, (what, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), what
    body = dict(r.json())
    assert body.get("path"), (what, body)  # every refusal says where
    if path is not None:
        assert body["path"] == path, (what, body)
    return body


CREATE_ATTACKS = [
    # (what, raw body, expected status, expected path)
    ("deeply nested array", b"[" * 100_000 + b"]" * 100_000, 422, "body"),
    ("deeply nested object", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 422, None),
    ("nested below the recursion limit", b"[" * 500 + b"]" * 500, 422, None),
    ("an escaped lone surrogate", b'{"reference": "ab\\ud800cd"}', 422, "reference"),
    ("raw bytes ED A0 80", b'{"reference": "ab\xed\xa0\x80cd"}', 422, "body"),
    ("NaN", b'{"reference": "x", "fraud_score": NaN}', 422, "body"),
    ("a NUL in a string", json.dumps({"reference": "a\u0000b"}).encode(), 422, "reference"),
    (
        "a NUL in a json field",
        json.dumps({"reference": "a", "evidence": {"k": "\u0000"}}).encode(),
        422,
        "evidence.k",
    ),  # noqa: E501
    (
        "an integer past 64 bits",
        b'{"reference": "x", "fraud_score": 99999999999999999999999}',
        422,
        "fraud_score",
    ),  # noqa: E501
    ("a text field holding an object", b'{"reference": {"a": 1}}', 422, "reference"),
]


async def test_a_crafted_body_is_refused_with_its_path(
    client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    for what, body, status, path in CREATE_ATTACKS:
        # As JSON, and as text/plain (which reaches the route's own reader): refused alike.
        for kind in ("application/json", "text/plain"):
            r = await client.post(f"{BASE}/claim", content=body, headers={"content-type": kind})
            _problem(r, status, path, what)
    assert len((await client.get(f"{BASE}/claim")).json()["items"]) == 1  # nothing written


QUERY_ATTACKS = [
    ("filter=fraud_score gt 99999999999999999999999", 400, "filter.fraud_score"),
    ("filter=fraud_score gt " + "9" * 5000, 400, "filter"),
    ("filter=amount gt 99999999999999999999999999999999", 400, "filter.amount"),
    ("filter=version eq 99999999999999999999999", 400, "filter.version"),
    ("filter=version eq 'abc'", 400, "filter.version"),
    ("filter=created_at gt 'yesterday'", 400, "filter.created_at"),
    ("filter=id eq 5", None, None),  # a number is text here: no match, no error
    ("filter=evidence eq 'x'", 400, "filter.evidence"),
    ("filter=evidence contains 'x'", 400, "filter.evidence"),
    ("filter=amount contains '1'", 400, "filter.amount"),
    ("filter=reference eq 'a%00b'", 400, "query"),
    ("filter=reference eq 'ab%ED%A0%80'", None, None),  # decoded with U+FFFD: no match
    ("filter=" + "{" * 5000, 400, "filter"),
    ("filter=" + '{"not":' * 3000 + "{}" + "}" * 3000, 400, "filter"),
    ("sort=evidence", 400, "sort"),
    ("sort=%00", 400, "query"),
    ("expand=holder,holder", None, None),
    ("limit=99999999999999999999999", 400, "limit"),
    ("cursor=%FF%FE", 400, "cursor"),
]


async def test_a_crafted_query_is_refused_with_its_path(
    client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    for query, status, path in QUERY_ATTACKS:
        r = await client.get(f"{BASE}/claim?{query}")
        if status is None:
            assert r.status_code == 200, (query, r.text)
        else:
            _problem(r, status, path, query[:60])


async def test_expanding_a_reference_twice_expands_it_once(
    client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    r = await client.get(f"{BASE}/claim?expand=holder,holder")
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["holder"]["name"] == "Maria"


async def test_a_crafted_record_id_is_a_4xx(
    client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    for record_id in ("%FF%FE%00", "%00", "%ED%A0%80", "x" * 5000, "%F0%9F%98%80", "..%2Fetc"):
        for method in ("GET", "PATCH", "PUT", "DELETE"):
            kw: dict[str, Any] = {"json": {"reference": "x"}} if method in ("PATCH", "PUT") else {}
            r = await client.request(method, f"{BASE}/claim/{record_id}", **kw)
            assert 400 <= r.status_code < 500, (method, record_id, r.text)
            _problem(r, r.status_code, None, f"{method} {record_id[:20]}")


async def test_a_crafted_if_match_is_412(client: httpx.AsyncClient, claims: dict[str, Any]) -> None:
    for header in ('"' + "9" * 5000 + '"', "9" * 20, '"٣"', 'W/"-1"', '"1.5"', '"\u00ff"', ""):
        r = await client.patch(
            f"{BASE}/claim/{claims['id']}",
            json={"reference": "C-2"},
            headers={"If-Match": header.encode()},  # type: ignore[dict-item]
        )
        _problem(r, 412, "If-Match", header[:20])
    assert (await client.get(f"{BASE}/claim/{claims['id']}")).json()["reference"] == "C-1"


async def test_an_update_with_crafted_values_changes_nothing(
    client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    url = f"{BASE}/claim/{claims['id']}"
    for body, path in (
        (b'{"notes": "a\\u0000b"}', "notes"),
        (b'{"notes": "\\udfff"}', "notes"),
        (b'{"fraud_score": -99999999999999999999}', "fraud_score"),
        (b'{"evidence": [' * 200 + b"]" * 200 + b"}", None),
    ):
        r = await client.patch(url, content=body, headers={"content-type": "application/json"})
        _problem(r, 422, path)
    after = (await client.get(url)).json()
    assert after["version"] == 1 and after["notes"] is None


async def test_a_model_route_refuses_unstorable_json_too(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    # A FastAPI body-model route (tenant creation) is behind the same reader.
    for body in (b'{"slug": "ok", "name": "a\\ud800"}', b'{"slug":' * 10_000):
        r = await client.post(
            "/api/tenants", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.post("/api/tenants", json={"slug": "nul", "name": "a\u0000b"})
    assert 400 <= r.status_code < 500, r.text
    assert await platform.tenants.find("nul") is None
    assert await platform.tenants.find("ok") is None
