"""One new file is enough: a node type, a connector kind, a compliance pack and a compile target
registered here (and nowhere else) show up in the designer's palette, and the connector kind's
own schema judges its documents."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from plinth.compiler.targets import TARGETS, AppVersion, Artifact, Target
from plinth.compiler.targets.base import artifact
from plinth.errors import Fault
from plinth.governance.compliance import packs
from plinth.governance.compliance.models import Pack
from plinth.integration import connectors
from plinth.integration.connectors import CallContext
from plinth.jsonschema import Validator
from plinth.workflows import steps
from plinth.workflows.steps import Base, Outcome, StepContext, follow
from tests.helpers import make_app, make_tenant


class Stamp(Base):
    """`stamp`: puts today's stamp on the instance (a node type of this test)."""

    type = "stamp"

    async def run(self, ctx: StepContext) -> Outcome:
        return Outcome(next=follow(ctx.spec), vars={"stamped": True})


class Ledger:
    """A connector kind of this test: posts to a ledger."""

    name = "ledger"
    description = "Posts entries to a ledger"
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["kind", "book"],
        "properties": {"kind": {"const": "ledger"}, "book": {"type": "string"}},
        "additionalProperties": False,
    }
    validator: Validator = None

    def operations(self, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {"post": {"description": "post an entry"}}

    def check(self, name: str, doc: dict[str, Any]) -> list[Fault]:
        return []

    async def call(
        self, ctx: CallContext, doc: dict[str, Any], operation: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        return {"posted": data}


MOON = Pack("moon", "Lunar Data Act", frozenset({"XM"}), ())


class Slides:
    """A compile target from this module alone: the page names as a plain-text outline."""

    name = "slides"
    description = "The app's pages as a slide deck outline"
    media_type = "text/plain"

    def revision(self) -> str:
        return ""

    def compile(self, version: AppVersion) -> Artifact:
        text = "\n".join(f"# {page}" for page in version.definition.get("pages", {}))
        return artifact(text.encode(), self.media_type)


SLIDES: Target = Slides()


@pytest.fixture
def registered() -> Iterator[None]:
    steps.register(Stamp())
    connectors.register(Ledger())
    packs.all_packs()  # the built-ins first, as in a running platform
    packs.register(MOON)
    TARGETS.register(SLIDES)
    try:
        yield
    finally:
        steps.unregister("stamp")
        connectors.unregister("ledger")
        packs.unregister("moon")
        TARGETS.unregister("slides")


async def test_new_kinds_show_in_the_palette(client: httpx.AsyncClient, registered: None) -> None:
    r = await client.get("/api/palette")
    assert r.status_code == 200
    palette = r.json()
    node_types = {n["type"]: n for n in palette["node_types"]}
    assert node_types["stamp"]["description"].startswith("Puts today's stamp")
    assert {"user_task", "service_task", "retention"} <= set(node_types)
    kinds = {k["kind"]: k for k in palette["connector_kinds"]}
    assert kinds["ledger"]["schema"]["required"] == ["kind", "book"] and "http" in kinds
    packs_by_id = {p["id"]: p for p in palette["compliance_packs"]}
    assert packs_by_id["moon"]["countries"] == ["XM"] and "gdpr" in packs_by_id
    targets = {t["name"]: t for t in palette["compile_targets"]}
    assert targets["slides"]["media_type"] == "text/plain"
    assert {"openapi", "webcomponents", "react"} <= set(targets)
    documents = {k["kind"]: k["schema"] for k in palette["document_kinds"]}
    assert {"entity", "page", "workflow", "connector"} <= set(documents)
    # The document schemas are generated from the registries.
    assert "stamp" in documents["workflow"]["$defs"]["node"]["properties"]["type"]["enum"]
    assert "ledger" in documents["connector"]["properties"]["kind"]["enum"]


async def test_a_new_connector_kind_judges_its_documents(
    client: httpx.AsyncClient, registered: None
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "books")
    bad = {"connectors": {"gl": {"kind": "ledger", "journal": "x"}}}
    r = await client.put("/api/t/acme/apps/books/draft", json=bad)
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["errors"]} >= {"connectors.gl.book"}
    good = {"connectors": {"gl": {"kind": "ledger", "book": "general"}}}
    assert (await client.put("/api/t/acme/apps/books/draft", json=good)).status_code == 200


async def test_a_new_node_type_is_accepted_in_workflows(
    client: httpx.AsyncClient, registered: None
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "books")
    flow = {
        "start": [{"type": "manual"}],
        "first": "s",
        "nodes": {"s": {"type": "stamp", "next": "done"}, "done": {"type": "end"}},
    }
    r = await client.put("/api/t/acme/apps/books/draft", json={"workflows": {"close": flow}})
    assert r.status_code == 200, r.text
    flow["nodes"]["s"]["type"] = "stomp"
    r = await client.put("/api/t/acme/apps/books/draft", json={"workflows": {"close": flow}})
    assert r.status_code == 422


async def test_the_palette_needs_a_caller(anon: httpx.AsyncClient) -> None:
    assert (await anon.get("/api/palette")).status_code == 401
