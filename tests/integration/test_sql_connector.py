"""The sql connector against the local PostgreSQL: parameterised reads, rows as records,
writes refused at publish and by the database."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.conftest import PG_ADMIN_URL, _pg_admin, _pg_dsn
from tests.helpers import make_app, make_tenant
from tests.integration.helpers import published


@pytest.fixture
async def external_db() -> AsyncIterator[str]:
    name = f"plinth_ext_{secrets.token_hex(5)}"
    try:
        await _pg_admin(f'CREATE DATABASE "{name}"')
    except OSError:
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_URL}")
    dsn = _pg_dsn(name)
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        "CREATE TABLE customers (id int primary key, name text, "
        "country text, balance numeric(10,2), since date)"
    )
    await conn.execute(
        "INSERT INTO customers VALUES (1,'Ada','GB',10.50,'2020-01-02'),"
        "(2,'Bo','SE',0,'2021-03-04'),(3,'Cy','GB',7,'2022-05-06')"
    )
    await conn.close()
    try:
        yield dsn
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sql_doc(**queries: dict) -> dict:
    return {"kind": "sql", "dsn": {"secret": "warehouse"}, "queries": queries}


async def test_parameterised_reads_come_back_as_records(
    client: httpx.AsyncClient, external_db: str
) -> None:
    doc = sql_doc(
        by_country={
            "sql": "SELECT id, name, balance, since FROM customers "
            "WHERE country = :country ORDER BY id",
            "params": {"country": {"type": "string", "maxLength": 2}},
        },
        sneaky={
            "sql": "SELECT name FROM customers WHERE name = :name",
            "params": {"name": {"type": "string"}},
        },
        one={"sql": "SELECT id FROM customers ORDER BY id", "max_rows": 2},
    )
    await published(
        client, "acme", "crm", {"connectors": {"wh": doc}}, secrets={"warehouse": external_db}
    )
    url = "/api/t/acme/apps/crm/connectors/wh/call"
    r = await client.post(url, json={"operation": "by_country", "input": {"country": "GB"}})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "count": 2,
        "truncated": False,
        "records": [
            {"id": 1, "name": "Ada", "balance": "10.50", "since": "2020-01-02"},
            {"id": 3, "name": "Cy", "balance": "7.00", "since": "2022-05-06"},
        ],
    }
    # Bound, not interpolated: an injection attempt is just a name that matches nothing.
    r = await client.post(url, json={"operation": "sneaky", "input": {"name": "x' OR '1'='1"}})
    assert r.json()["count"] == 0
    r = await client.post(url, json={"operation": "one", "input": {}})
    assert r.json()["truncated"] is True and r.json()["count"] == 2
    r = await client.post(url, json={"operation": "by_country", "input": {"country": 7}})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "input.country"
    assert external_db not in r.text


async def test_writes_are_refused(client: httpx.AsyncClient, external_db: str) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "crm")
    for sql in (
        "DELETE FROM customers",
        "SELECT 1; DROP TABLE customers",
        "WITH x AS (DELETE FROM customers RETURNING *) SELECT * FROM x",
    ):
        r = await client.put(
            "/api/t/acme/apps/crm/draft", json={"connectors": {"wh": sql_doc(q={"sql": sql})}}
        )
        assert r.status_code == 422, sql
        assert r.json()["errors"][0]["path"] == "connectors.wh.queries.q.sql"
    # A write hidden in a function call still meets a READ ONLY transaction.
    conn = await asyncpg.connect(external_db)
    await conn.execute(
        "CREATE FUNCTION wipe() RETURNS int LANGUAGE sql AS 'DELETE FROM customers RETURNING 1'"
    )
    await conn.close()
    await published(
        client,
        "acme",
        "crm2",
        {"connectors": {"wh": sql_doc(q={"sql": "SELECT wipe()"})}},
        secrets={"warehouse": external_db},
        new_tenant=False,
    )
    r = await client.post(
        "/api/t/acme/apps/crm2/connectors/wh/call", json={"operation": "q", "input": {}}
    )
    assert r.status_code == 502 and r.json()["sqlstate"] == "25006"
    conn = await asyncpg.connect(external_db)
    assert await conn.fetchval("SELECT count(*) FROM customers") == 3
    await conn.close()
