"""A hand-written order API: what a developer would write for the bench's `order` entity
without Plinth. FastAPI and pydantic for the HTTP side, asyncpg or aiosqlite for storage, a
bearer token checked against an in-memory set. It imports nothing from Plinth, so the only
thing it shares with Plinth in `bench/runtime_api.py` is the database server.

    ORDERS_DATABASE=postgresql://postgres@127.0.0.1:5432/orders ORDERS_TOKENS=secret \\
        uvicorn app:app --app-dir bench/baseline --loop uvloop --http httptools --workers 1

`ORDERS_DATABASE` may also be `sqlite:///path/to/orders.db`. The table exists already
(`schema.py`; the bench creates and fills it before the server starts).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal, Protocol

from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

Row = dict[str, object]
SORTABLE = {"amount", "qty", "created_at", "name"}


class OrderIn(BaseModel):
    """The body of a new order; the same constraints as the Plinth entity."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=100)]
    amount: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)] | None = None
    status: Literal["open", "paid", "void"] = "open"
    qty: Annotated[int, Field(ge=0)] | None = None


class Orders(Protocol):
    async def insert(self, row: Row) -> None: ...
    async def get(self, order_id: str) -> Row | None: ...
    async def page(
        self, status: str | None, sort: str, desc: bool, after: tuple[object, str] | None, n: int
    ) -> list[Row]: ...
    async def close(self) -> None: ...


class PostgresOrders:
    """asyncpg pool; statements are prepared once per connection by asyncpg's own cache."""

    def __init__(self, pool: object) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, url: str, size: int) -> PostgresOrders:
        import asyncpg

        return cls(await asyncpg.create_pool(url, min_size=min(4, size), max_size=size))

    async def insert(self, row: Row) -> None:
        await self.pool.execute(  # type: ignore[attr-defined]
            "INSERT INTO orders (id, version, created_at, updated_at, created_by, updated_by,"
            " name, amount, status, qty) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            *row.values(),
        )

    async def get(self, order_id: str) -> Row | None:
        found = await self.pool.fetchrow(  # type: ignore[attr-defined]
            "SELECT * FROM orders WHERE id = $1", order_id
        )
        return dict(found) if found else None

    async def page(
        self, status: str | None, sort: str, desc: bool, after: tuple[object, str] | None, n: int
    ) -> list[Row]:
        where, args = _where(status, sort, desc, after, lambda i: f"${i}")
        direction = "DESC" if desc else "ASC"
        rows = await self.pool.fetch(  # type: ignore[attr-defined]
            f"SELECT * FROM orders {where} ORDER BY {sort} {direction}, id LIMIT {n}", *args
        )
        return [dict(r) for r in rows]

    async def close(self) -> None:
        await self.pool.close()  # type: ignore[attr-defined]


class SqliteOrders:
    """One aiosqlite connection for writes (SQLite has one writer) and a few for reads, WAL."""

    def __init__(self, writer: object, readers: list[object]) -> None:
        self.writer = writer
        self.readers = readers
        self._next = 0

    @classmethod
    async def open(cls, path: str, readers: int) -> SqliteOrders:
        import aiosqlite

        async def connect() -> aiosqlite.Connection:
            conn = await aiosqlite.connect(path, isolation_level=None)
            conn.row_factory = aiosqlite.Row
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
                await conn.execute(f"PRAGMA {pragma}")
            return conn

        return cls(await connect(), [await connect() for _ in range(readers)])

    def _reader(self) -> object:
        self._next = (self._next + 1) % len(self.readers)
        return self.readers[self._next]

    async def insert(self, row: Row) -> None:
        values = [str(v) if isinstance(v, Decimal | datetime) else v for v in row.values()]
        await self.writer.execute(  # type: ignore[attr-defined]
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values
        )

    async def get(self, order_id: str) -> Row | None:
        reader = self._reader()
        async with reader.execute(  # type: ignore[attr-defined]
            "SELECT * FROM orders WHERE id = ?", (order_id,)
        ) as cur:
            found = await cur.fetchone()
        return dict(found) if found else None

    async def page(
        self, status: str | None, sort: str, desc: bool, after: tuple[object, str] | None, n: int
    ) -> list[Row]:
        where, args = _where(status, sort, desc, after, lambda _: "?")
        direction = "DESC" if desc else "ASC"
        async with self._reader().execute(  # type: ignore[attr-defined]
            f"SELECT * FROM orders {where} ORDER BY {sort} {direction}, id LIMIT {n}", args
        ) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def close(self) -> None:
        for conn in (self.writer, *self.readers):
            await conn.close()  # type: ignore[attr-defined]


def _where(
    status: str | None,
    sort: str,
    desc: bool,
    after: tuple[object, str] | None,
    mark: Callable[[int], str],
) -> tuple[str, list[object]]:
    """The WHERE clause of a page: the status filter and the keyset position."""
    clauses: list[str] = []
    args: list[object] = []
    if status is not None:
        args.append(status)
        clauses.append(f"status = {mark(len(args))}")
    if after is not None:
        value, last_id = after
        args += [value, value, last_id]
        op = "<" if desc else ">"
        a, b, c = (mark(len(args) - 2), mark(len(args) - 1), mark(len(args)))
        clauses.append(f"({sort} {op} {a} OR ({sort} = {b} AND id > {c}))")
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _json(row: Row) -> Row:
    out = dict(row)
    for key in ("created_at", "updated_at"):
        if isinstance(out[key], datetime):
            out[key] = out[key].isoformat()  # type: ignore[union-attr]
    if out["amount"] is not None:
        out["amount"] = str(Decimal(str(out["amount"])).quantize(Decimal("0.01")))
    return out


def _cursor(value: object, order_id: str) -> str:
    if isinstance(value, Decimal | datetime):
        value = str(value) if isinstance(value, Decimal) else value.isoformat()
    raw = json.dumps([value, order_id])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _after(cursor: str | None, sort: str) -> tuple[object, str] | None:
    if cursor is None:
        return None
    try:
        value, order_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError as exc:
        raise HTTPException(400, "bad cursor") from exc
    if sort == "amount" and value is not None:
        value = Decimal(value)
    if sort == "created_at":
        value = datetime.fromisoformat(value)
    return value, str(order_id)


async def _open(url: str) -> Orders:
    if url.startswith("sqlite:///"):
        return await SqliteOrders.open(url.removeprefix("sqlite:///"), readers=4)
    return await PostgresOrders.open(url, size=int(os.environ.get("ORDERS_POOL", "16")))


TOKENS = frozenset(t for t in os.environ.get("ORDERS_TOKENS", "").split(",") if t)
store: Orders


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global store
    store = await _open(os.environ["ORDERS_DATABASE"])
    yield
    await store.close()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


def caller(authorization: Annotated[str | None, Header()] = None) -> str:
    """The bearer token, if it is one of ours."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or token not in TOKENS:
        raise HTTPException(401, "unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    return "api:" + token[:6]


Caller = Annotated[str, Depends(caller)]


@app.post("/orders", status_code=201)
async def create(order: OrderIn, who: Caller) -> JSONResponse:
    now = datetime.now(UTC)
    row: Row = {
        "id": secrets.token_urlsafe(16),
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "created_by": who,
        "updated_by": who,
        **order.model_dump(),
    }
    await store.insert(row)
    return JSONResponse(_json(row), status_code=201)


@app.get("/orders/{order_id}")
async def read(order_id: str, who: Caller) -> JSONResponse:
    found = await store.get(order_id)
    if found is None:
        raise HTTPException(404, "no such order")
    return JSONResponse(_json(found))


@app.get("/orders")
async def page(
    who: Caller,
    status: Literal["open", "paid", "void"] | None = None,
    sort: str = "created_at",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> JSONResponse:
    desc = sort.startswith("-")
    field = sort.removeprefix("-")
    if field not in SORTABLE:
        raise HTTPException(400, f"cannot sort by {field!r}")
    rows = await store.page(status, field, desc, _after(cursor, field), limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [_json(r) for r in rows]
    last = rows[-1] if rows and more else None
    return JSONResponse(
        {"items": items, "next_cursor": _cursor(last[field], str(last["id"])) if last else None}
    )
