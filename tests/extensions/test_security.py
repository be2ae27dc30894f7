"""Hostile plugins: each attack is stopped with a clear, typed error; the server keeps serving."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from plinth.server import Platform
from tests.extensions.conftest import ADMIN, install, publish
from tests.helpers import make_app, make_tenant

URL = "/api/t/acme/plugins/hostile/actions/{}"


@pytest.fixture
async def hostile(
    platform: Platform, client: httpx.AsyncClient, components: dict[str, Path]
) -> Platform:
    await make_tenant(client, "acme")
    await make_tenant(client, "globex")
    await publish(platform, components, "hostile")
    await install(platform, "acme", "hostile")
    # Tight fuel and memory keep the attacks quick; the defaults would stop them too, only
    # later. The wall clock is roomy: these tests are about fuel, memory and the stack (a
    # loaded machine must not turn "out of fuel" into "past the deadline"); the deadline has
    # its own test with its own limit.
    await platform.plugins.set_limits(
        "acme",
        "hostile",
        "action",
        {"fuel": 400_000_000, "timeout_ms": 10_000, "memory_bytes": 96 << 20},
        ADMIN,
    )
    return platform


async def _healthy(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    r = await client.post(URL.format("echo"), json={"still": "alive"})
    assert r.status_code == 200 and r.json() == {"still": "alive"}
    # Nothing leaked: every store (the attacker's too) is gone and its linear memory unmapped.
    platform = client._transport.app.state.platform  # type: ignore[attr-defined]
    assert platform.plugins.executor.live_memories() == 0


async def _attack(
    client: httpx.AsyncClient, action: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post(URL.format(action), json=body or {})


async def test_infinite_loop_runs_out_of_fuel(hostile: Platform, client: httpx.AsyncClient) -> None:
    r = await _attack(client, "loop")
    assert r.status_code == 502 and r.json()["code"] == "plugin_out_of_fuel"
    await _healthy(client)


async def test_infinite_loop_hits_the_wall_clock_deadline(
    hostile: Platform, client: httpx.AsyncClient
) -> None:
    await hostile.plugins.set_limits(
        "acme", "hostile", "action", {"fuel": 20_000_000_000, "timeout_ms": 300}, ADMIN
    )
    r = await _attack(client, "loop")
    assert r.status_code == 504 and r.json()["code"] == "plugin_deadline"
    # The next call gets the roomy limit back: 300 ms would also time out a plain echo on a
    # loaded machine while the killed worker's replacement starts.
    await hostile.plugins.set_limits("acme", "hostile", "action", {"timeout_ms": 10_000}, ADMIN)
    await _healthy(client)


async def test_memory_bomb_is_stopped(hostile: Platform, client: httpx.AsyncClient) -> None:
    r = await _attack(client, "membomb")
    assert r.status_code == 502 and r.json()["code"] == "plugin_out_of_memory", r.text
    # Metering shows how close it came: its peak memory is right under the 96 MB limit.
    [call] = (await client.get("/api/t/acme/plugins/metering")).json()["calls"]
    assert 80 << 20 < call["peak_memory"] <= 96 << 20
    await _healthy(client)


async def test_each_call_shows_the_memory_it_held_and_one_over_its_limit_is_refused(
    hostile: Platform, client: httpx.AsyncClient
) -> None:
    # hostile is not stateless: each call is a fresh instance, metered with the defaults.
    for mb in (40, 10):
        r = await _attack(client, "hold", {"mb": mb})
        assert r.status_code == 200 and r.json() == {"held": mb << 20}, r.text
    r = await _attack(client, "hold", {"mb": 120})  # over the 96 MB limit
    assert r.status_code == 502 and r.json()["code"] == "plugin_out_of_memory", r.text
    over, ten, forty = (await client.get("/api/t/acme/plugins/metering")).json()["calls"]
    # At least what it held, under the limit; a call's own peak, not the worker's so far.
    assert 40 << 20 <= forty["peak_memory"] <= 96 << 20
    assert 10 << 20 <= ten["peak_memory"] < forty["peak_memory"]
    # Refused at the grow that would pass the limit: the memory never held the 120 MB.
    assert over["outcome"] == "plugin_out_of_memory" and over["peak_memory"] < 96 << 20
    await _healthy(client)


async def test_deep_recursion_is_stopped(hostile: Platform, client: httpx.AsyncClient) -> None:
    r = await _attack(client, "recurse")
    assert r.status_code == 502
    assert r.json()["code"] in {"plugin_trap", "plugin_error", "plugin_out_of_fuel"}, r.text
    await _healthy(client)


async def test_no_files_no_environment(hostile: Platform, client: httpx.AsyncClient) -> None:
    os.environ["PLINTH_TEST_SECRET"] = "s3cret-value"
    try:
        r = await _attack(client, "files")
        assert r.status_code == 200
        seen = r.json()
        assert all(str(v).startswith("refused") or v == [] for v in seen.values()), seen
        assert "root:" not in r.text
        r = await _attack(client, "env")
        assert r.status_code == 200
        assert "s3cret-value" not in r.text and "PATH" not in r.json()["environ"]
    finally:
        del os.environ["PLINTH_TEST_SECRET"]


async def test_no_sockets(hostile: Platform, client: httpx.AsyncClient) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        port = listener.getsockname()[1]
        r = await _attack(client, "socket", {"host": "127.0.0.1", "port": port})
        # The guest has no socket module at all (or, if it had, no way to connect).
        if r.status_code == 200:
            assert r.json()["connected"] is False
        else:
            assert "No module named 'socket'" in r.json()["detail"]
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the host's network
    finally:
        listener.close()


async def test_ungranted_capability_is_refused(
    hostile: Platform, client: httpx.AsyncClient
) -> None:
    r = await _attack(client, "ungranted")
    assert r.status_code == 502 and r.json()["code"] == "plugin_error"
    assert "'kv' is not granted" in r.json()["detail"]
    await _healthy(client)


async def test_records_are_always_the_callers_tenant(
    hostile: Platform, client: httpx.AsyncClient
) -> None:
    globex = await hostile.tenants.get("globex")
    model = {
        "entities": {
            "claim": {"fields": {"amount": {"type": "integer"}, "tenant_id": {"type": "string"}}}
        }
    }
    for slug in ("acme", "globex"):
        await make_app(client, slug, "claims", model)
        assert (await client.post(f"/api/t/{slug}/apps/claims/publish")).status_code == 201
    # The plugin names globex in its data; the host always writes as the caller (acme).
    r = await _attack(client, "other-tenant", {"app": "claims", "tenant": globex.id})
    assert r.status_code == 200, r.text
    acme_rows = (await client.get("/api/t/acme/apps/claims/data/claim")).json()["items"]
    globex_rows = (await client.get("/api/t/globex/apps/claims/data/claim")).json()["items"]
    assert [row["tenant_id"] for row in acme_rows] == [globex.id]  # inert data, in acme
    assert globex_rows == []


async def test_100_mb_output_is_refused(hostile: Platform, client: httpx.AsyncClient) -> None:
    await hostile.plugins.set_limits(
        "acme",
        "hostile",
        "action",
        {"memory_bytes": 512 << 20, "fuel": 20_000_000_000, "timeout_ms": 20_000},
        ADMIN,
    )
    r = await _attack(client, "bigout")
    assert r.status_code == 502, r.text
    # With memory to spare the guest builds the 100 MB; the host refuses to take it.
    assert r.json()["code"] == "plugin_output_too_large", r.text
    assert r.json()["limit"] == 1 << 20
    await _healthy(client)


async def test_output_not_matching_schema_is_invalid(
    hostile: Platform, client: httpx.AsyncClient
) -> None:
    r = await _attack(client, "badshape")
    assert r.status_code == 502 and r.json()["code"] == "plugin_invalid_output"
    assert r.json()["path"].startswith("output")


async def test_failures_are_metered(hostile: Platform, client: httpx.AsyncClient) -> None:
    await _attack(client, "loop")
    calls = (await client.get("/api/t/acme/plugins/metering")).json()["calls"]
    assert calls[0]["outcome"] == "plugin_out_of_fuel" and calls[0]["fuel"] == 400_000_000


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_plugins_calling_plugins_are_bounded(
    hostile: Platform,
    client: httpx.AsyncClient,
    components: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from plinth.extensions import calls

    await publish(hostile, components, "fraud-scorer")
    await install(hostile, "acme", "fraud-scorer")
    # The nested hook loads its component in another worker within the outer call's time:
    # room for that on a loaded machine (this test is about nesting, not deadlines).
    await hostile.plugins.set_limits("acme", "hostile", "action", {"timeout_ms": 10_000}, ADMIN)
    model = {
        "entities": {
            "claim": {
                "fields": {
                    "amount": {"type": "integer"},
                    "tenant_id": {"type": "string"},
                    "fraud_score": {"type": "integer"},
                }
            }
        }
    }
    await make_app(client, "acme", "claims", model)
    assert (await client.post("/api/t/acme/apps/claims/publish")).status_code == 201
    # The hostile plugin writes a claim: the fraud scorer's before-write hook runs within it.
    r = await _attack(client, "other-tenant", {"app": "claims", "tenant": "x"})
    assert r.status_code == 200, r.text
    rows = (await client.get("/api/t/acme/apps/claims/data/claim")).json()["items"]
    assert [row["fraud_score"] for row in rows] == [0]
    # Nesting is bounded (a hook writing records that run hooks ... cannot pin every thread).
    monkeypatch.setattr(calls, "MAX_NESTING", 1)
    r = await _attack(client, "other-tenant", {"app": "claims", "tenant": "x"})
    assert r.status_code == 502 and "plugin_nested_too_deep" in r.json()["detail"], r.text
    assert len((await client.get("/api/t/acme/apps/claims/data/claim")).json()["items"]) == 1
    await _healthy(client)
