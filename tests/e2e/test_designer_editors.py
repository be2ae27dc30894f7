"""Browser tests of the page builder and the workflow graph editor (Playwright + Chromium).

One server (SQLite: the database makes no difference here) serves both tests; each test opens
its own app, so they do not see each other's edits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from plinth.metadata.files import read_folder
from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import SHOTS
from tests.e2e.test_designer import ARGS, CHROMIUM, ROOT, Server
from tests.e2e.test_designer import pytestmark as needs_browser
from tests.helpers import make_app, make_tenant, token_for

# One Chromium for the module's tests: they run in the module's event loop.
pytestmark = [needs_browser, pytest.mark.asyncio(loop_scope="module")]
DEMO = read_folder(ROOT / "src" / "plinth" / "demo" / "claims")[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("editors")
    s = Server(f"sqlite+aiosqlite:///{data}/plinth.db", data / "files")
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def new_app(server: Server, slug: str) -> tuple[str, str]:
    """A copy of the demo claims app; tokens of two designers."""
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as http:
        if "acme" not in {t["slug"] for t in (await http.get("/api/tenants")).json()["items"]}:
            await make_tenant(http, "acme")
        await make_app(http, "acme", slug, DEMO)
        return await token_for(http, "acme", "designer"), await token_for(http, "acme", "owner")


async def open_editor(
    browser: object, server: Server, token: str, app: str, editor: str, width: int = 1500
) -> object:
    context = await browser.new_context(viewport={"width": width, "height": 860})  # type: ignore[attr-defined]
    await context.add_init_script(f"localStorage.setItem('plinth.token', {token!r})")
    page = await context.new_page()
    await page.goto(f"{server.url}/#/t/acme/apps/{app}/{editor}")
    await page.wait_for_selector("#status[data-synced='yes']", timeout=10000)
    return page


async def draft(server: Server, app: str) -> dict:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as http:
        return (await http.get(f"/api/t/acme/apps/{app}/draft")).json()["definition"]


async def settled(server: Server, app: str, check: object, within: float = 15) -> dict:
    """The REST draft once `check(draft)` holds (the room writes it after updates settle)."""
    for _ in range(int(within * 10)):
        body = await draft(server, app)
        if check(body):  # type: ignore[operator]
            return body
        await asyncio.sleep(0.1)
    raise AssertionError("the REST draft never showed the change")


async def test_drag_a_component_onto_a_page_and_edit_it_seen_by_a_second_browser(
    server: Server, browser: object
) -> None:
    ann, bob = await new_app(server, "pagesapp")
    a = await open_editor(browser, server, ann, "pagesapp", "pages")
    b = await open_editor(browser, server, bob, "pagesapp", "pages")
    for p in (a, b):
        await p.click("li[data-page='claims']")  # type: ignore[attr-defined]
    # drag a `text` from the palette into the page's root stack (again if the canvas redrew
    # under the pointer: it draws the portal's runtime asynchronously, with live data)
    new = a.locator("#props[data-for^='text_']")  # type: ignore[attr-defined]
    for attempt in range(3):
        await a.drag_and_drop(
            ".palette-item[data-kind='text']",  # type: ignore[attr-defined]
            "#canvas .dropzone[data-drop='root']",
        )
        try:
            await new.wait_for(timeout=10000)
            break
        except Exception:
            if attempt == 2:
                raise
    cid = await new.get_attribute("data-for")
    # the property panel is generated from the kind's schema: text is a string, variant an enum
    await a.fill("#props [data-prop='text']", "Hello from Ann")  # type: ignore[attr-defined]
    await a.press("#props [data-prop='text']", "Enter")  # type: ignore[attr-defined]
    await a.select_option("#props [data-prop='variant']", "h2")  # type: ignore[attr-defined]
    seen = b.locator(f".comp[data-comp='{cid}']")  # type: ignore[attr-defined]
    await seen.filter(has_text="Hello from Ann").wait_for(timeout=15000)
    # a move re-parents the same component (same id, no copy) and the other browser follows
    # (dragged again if the canvas redrew under the pointer, as above)
    moved = f"""() => {{
      const canvas = document.querySelector('#canvas').shadowRoot;
      const ids = [...canvas.querySelectorAll('.comp')].map(e => e.dataset.comp);
      return ids.indexOf('{cid}') === ids.indexOf('table') - 1 &&
             ids.filter(i => i === '{cid}').length === 1 }}"""
    for attempt in range(3):
        await a.drag_and_drop(
            f".comp[data-comp='{cid}']",  # type: ignore[attr-defined]
            ".comp[data-comp='table'] ",
        )
        try:
            await a.wait_for_function(moved, timeout=5000)  # type: ignore[attr-defined]
            break
        except Exception:
            if attempt == 2:
                raise
    await b.wait_for_function(moved, timeout=15000)  # type: ignore[attr-defined]
    body = await settled(server, "pagesapp", lambda d: cid in d["pages"]["claims"]["components"])
    comp = body["pages"]["claims"]["components"][cid]
    assert comp["kind"] == "text" and comp["parent"] == "root"
    assert comp["props"] == {"text": "Hello from Ann", "variant": "h2"}
    order = body["pages"]["claims"]["components"]
    assert order["by_country"]["order"] < comp["order"] < order["table"]["order"]
    await a.click(f".comp[data-comp='{cid}']")  # type: ignore[attr-defined]
    await b.click(".comp[data-comp='heading']")  # type: ignore[attr-defined]
    await a.wait_for_selector(".comp[data-comp='heading'].selected-by")  # type: ignore[attr-defined]
    SHOTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    await a.screenshot(path=str(SHOTS / "page-builder.png"))  # type: ignore[attr-defined]


async def test_add_and_connect_a_workflow_node_in_the_graph_editor(
    server: Server, browser: object
) -> None:
    ann, _ = await new_app(server, "flowapp")
    a = await open_editor(browser, server, ann, "flowapp", "workflows", width=2100)
    await a.wait_for_selector("g.wf-node[data-node='triage']")  # type: ignore[attr-defined]
    await a.fill("#new-node-name", "notify")  # type: ignore[attr-defined]
    await a.select_option("#new-node-type", "service_task")  # type: ignore[attr-defined]
    await a.click("#add-node")  # type: ignore[attr-defined]
    await a.wait_for_selector("g.wf-node[data-node='notify'][data-type='service_task']")  # type: ignore[attr-defined]
    await a.wait_for_selector("#node-props[data-for='notify']")  # type: ignore[attr-defined]
    await a.select_option("#node-props select[data-key='notify.next']", "approve")  # type: ignore[attr-defined]
    await a.wait_for_selector("g.wf-edge[data-from='notify'][data-to='approve']")  # type: ignore[attr-defined]
    await a.fill("#node-props [data-prop='title']", "Notify the holder")  # type: ignore[attr-defined]
    await a.press("#node-props [data-prop='title']", "Enter")  # type: ignore[attr-defined]
    # a gateway gets a branch to notify: a condition and a target, no JSON
    await a.click("g.wf-node[data-node='route']")  # type: ignore[attr-defined]
    await a.wait_for_selector("#node-props[data-for='route']")  # type: ignore[attr-defined]
    await a.click("#add-branch")  # type: ignore[attr-defined]
    await a.select_option("select[data-key='route.branches.1.next']", "notify")  # type: ignore[attr-defined]
    await a.wait_for_selector("g.wf-edge[data-from='route'][data-to='notify']")  # type: ignore[attr-defined]
    body = await settled(
        server,
        "flowapp",
        lambda d: (
            d["workflows"]["claims_process"]["nodes"].get("notify", {}).get("title")
            == "Notify the holder"
        ),
    )
    node = body["workflows"]["claims_process"]["nodes"]["notify"]
    assert node["type"] == "service_task" and node["next"] == "approve"
    branches = body["workflows"]["claims_process"]["nodes"]["route"]["branches"]
    assert branches[-1] == {"when": "true", "next": "notify"}
    await a.click("g.wf-node[data-node='review']")  # type: ignore[attr-defined]
    SHOTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    await a.screenshot(path=str(SHOTS / "workflow-editor.png"))  # type: ignore[attr-defined]


async def test_fix_compliance_shows_the_patch_first_then_applies_it_live(
    server: Server, browser: object
) -> None:
    from tests.governance.compliance.apps import bad_app

    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as http:
        await make_tenant(http, "shopco")
        r = await http.put("/api/t/shopco/compliance/profile", json={"countries": ["DE"]})
        assert r.status_code == 200, r.text
        await make_app(http, "shopco", "shop", bad_app())
        owner = await token_for(http, "shopco", "owner")
    context = await browser.new_context(viewport={"width": 1500, "height": 860})  # type: ignore[attr-defined]
    await context.add_init_script(f"localStorage.setItem('plinth.token', {owner!r})")
    a = await context.new_page()
    await a.goto(f"{server.url}/#/t/shopco/apps/shop/model")
    await a.wait_for_selector("#status[data-synced='yes']", timeout=10000)
    await a.click("li[data-entity='payment']")
    await a.wait_for_selector("tr[data-field='cvv']")
    await a.click("#tab-compliance")
    await a.click("#fix-compliance")
    patch = a.locator("#fix-patch")
    await patch.wait_for()
    assert "/entities/payment/fields/cvv" in await patch.inner_text()
    await asyncio.sleep(0.3)
    assert await a.locator("tr[data-field='cvv']").count() == 1  # nothing applied on review
    await a.click("#apply-fix")
    await a.wait_for_selector("#fix-applied")
    # the fix lands in the REST draft and from there in the live document
    await a.wait_for_selector("tr[data-field='cvv']", state="detached", timeout=15000)
