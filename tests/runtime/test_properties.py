"""Property tests: whatever filter text, JSON body or header a caller sends, the data API answers
a 2xx or a 4xx problem+json with a path — never a 5xx — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plinth.runtime.filters import OPS, parse
from tests.helpers import make_app, make_tenant, publish

APP = {
    "entities": {
        "item": {
            "fields": {
                "name": {"type": "string", "maxLength": 40},
                "qty": {"type": "integer"},
                "price": {"type": "decimal", "precision": 10, "scale": 2},
                "due": {"type": "date"},
                "tags": {"type": "json"},
                "ok": {"type": "boolean"},
            }
        }
    }
}
BASE = "/api/t/acme/apps/shop/data/item"
FIELDS = ["name", "qty", "price", "due", "tags", "ok", "id", "version", "created_at", "nope"]
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

text = st.text(st.characters(codec="utf-8"), max_size=30)
values = st.one_of(
    text.map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.6f}"),
    st.sampled_from(["true", "false", "null", "'2026-01-01'", "'x'"]),
)
condition = st.builds(
    lambda f, op, v: f"{f} {op} ({v})" if op in ("in", "nin") else f"{f} {op} {v}",
    st.sampled_from(FIELDS),
    st.sampled_from([*OPS, "like", "=="]),
    values,
)
filters = st.one_of(
    st.recursive(
        condition,
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"{a} and {b}", inner, inner),
            st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
            st.builds(lambda a: f"not {a}", inner),
        ),
        max_leaves=6,
    ),
    text,  # and anything at all
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.fixed_dictionaries({}, optional={f: json_values for f in FIELDS}),
    json_values,
)


def _answered(r: httpx.Response, what: object) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text[:500])
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), what
        assert r.json().get("path") is not None, (what, r.text[:300])


@pytest.fixture
async def shop(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "shop")
    assert (await publish(client, "acme", "shop", APP)).status_code == 201
    r = await client.post(BASE, json={"name": "a", "qty": 1, "price": "2.50", "tags": [1]})
    assert r.status_code == 201, r.text
    return client


@given(filters)
@EXAMPLES
def test_the_filter_parser_parses_or_refuses_with_400(source: str) -> None:
    from plinth.errors import BadRequest

    try:
        parse(source)
    except BadRequest as exc:
        assert exc.status == 400 and exc.path == "filter"


async def test_any_filter_is_a_page_or_a_4xx(shop: httpx.AsyncClient) -> None:
    seen: list[str] = []

    @given(filters)
    @EXAMPLES
    def collect(source: str) -> None:
        seen.append(source)

    collect()
    for source in seen:  # hypothesis drives generation; requests go through the event loop
        _answered(await shop.get(BASE, params={"filter": source}), source)


async def test_any_json_body_is_stored_or_a_4xx(shop: httpx.AsyncClient) -> None:
    seen: list[Any] = []

    @given(bodies)
    @EXAMPLES
    def collect(body: Any) -> None:
        seen.append(body)

    collect()
    record = (await shop.get(BASE)).json()["items"][0]
    for body in seen:
        raw = json.dumps(body)
        _answered(await shop.post(BASE, content=raw), body)
        r = await shop.patch(f"{BASE}/{record['id']}", content=raw)
        _answered(r, body)


async def test_any_header_is_answered_or_a_4xx(shop: httpx.AsyncClient) -> None:
    seen: list[tuple[str, str]] = []
    header_text = st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=60,
    )

    @given(
        st.sampled_from(["If-Match", "Content-Type", "Authorization", "X-Request-Id"]), header_text
    )
    @EXAMPLES
    def collect(name: str, value: str) -> None:
        seen.append((name, value))

    collect()
    record = (await shop.get(BASE)).json()["items"][0]
    for name, value in seen:
        headers = {name: value.encode("latin-1")}
        if name == "Authorization":
            r = await shop.get(BASE, headers=headers)  # type: ignore[arg-type]
        else:
            r = await shop.patch(
                f"{BASE}/{record['id']}",
                json={"name": "b"},
                headers=headers,  # type: ignore[arg-type]
            )
        _answered(r, (name, value))
