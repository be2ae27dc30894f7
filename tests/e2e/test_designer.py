"""Browser tests of the web IDE: Playwright driving Chromium against a real uvicorn server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import SHOTS
from tests.helpers import CLAIMS, free_port, make_app, make_tenant, token_for

# The browser proves the IDE; that a restart loses nothing on each database is proved by
# tests/designer against both, so the browser runs once, on SQLite.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not (ROOT / "web" / "dist" / "index.html").exists() or not Path(CHROMIUM).exists(),
    reason="needs the built web IDE (npm --prefix web ci && npm --prefix web run build) "
    "and /usr/bin/chromium",
)


class Server:
    """`uvicorn plinth.server.app:create_app` in its own process, restartable on one port."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "PLINTH_DATABASE_URL": database_url,
            "PLINTH_ADMIN_TOKEN": ADMIN_TOKEN,
            "PLINTH_DATA_DIR": str(data_dir),
            "PLINTH_EMBEDDED_WORKER": "false",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "plinth.server.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=ROOT,
        )
        for _ in range(300):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited")
            import time

            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # graceful: the lifespan runs the designer's stop hook
            self.proc.wait(15)
            self.proc = None


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    s = Server(database_url, tmp_path / "data")
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def open_designer(browser: object, server: Server, token: str) -> object:
    context = await browser.new_context(viewport={"width": 1400, "height": 800})  # type: ignore[attr-defined]
    await context.add_init_script(f"localStorage.setItem('plinth.token', {token!r})")
    page = await context.new_page()
    await page.goto(f"{server.url}/#/t/acme/apps/claims")
    await page.wait_for_selector("#status[data-synced='yes']", timeout=10000)
    await page.click("li[data-entity='claim']")
    return page


async def add_field(page: object, name: str) -> None:
    await page.fill("#new-field", name)  # type: ignore[attr-defined]
    await page.click("#add-field")  # type: ignore[attr-defined]


async def fields_of(page: object) -> set[str]:
    names = await page.eval_on_selector_all(  # type: ignore[attr-defined]
        "tr[data-field]", "rows => rows.map(r => r.dataset.field)"
    )
    return set(names)


async def wait_fields(page: object, want: set[str], within: float = 10) -> None:
    for _ in range(int(within * 20)):
        if want <= await fields_of(page):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{want - await fields_of(page)} never appeared")


async def rest(server: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )


async def test_two_browsers_co_edit_a_late_joiner_and_a_restart(
    server: Server, browser: object
) -> None:
    async with await rest(server) as http:
        await make_tenant(http, "acme")
        await make_app(http, "acme", "claims", CLAIMS)
        ann = await token_for(http, "acme", "designer")
        bob = await token_for(http, "acme", "owner")
    a = await open_designer(browser, server, ann)
    b = await open_designer(browser, server, bob)
    # both edit the same entity at once (each adds again if its click landed before the
    # entity's fields were drawn: on a loaded machine a browser's own field went missing)
    await asyncio.gather(add_field(a, "notes"), add_field(b, "region"))
    for page, name in ((a, "notes"), (b, "region")):
        try:
            await wait_fields(page, {name}, within=3)
        except AssertionError:
            await add_field(page, name)
    want = {"holder", "amount", "status", "notes", "region"}
    await wait_fields(a, want, within=15)
    await wait_fields(b, want, within=15)
    # presence: each sees the other's avatar, names stamped by the server
    await a.wait_for_selector(".avatar[data-name='owner-key']")  # type: ignore[attr-defined]
    await b.wait_for_selector(".avatar[data-name='designer-key']")  # type: ignore[attr-defined]
    # b's selection shows on a's screen
    await b.focus("tr[data-field='amount'] input.field-name")  # type: ignore[attr-defined]
    await a.wait_for_selector("tr[data-field='amount'].selected-by")  # type: ignore[attr-defined]
    # undo of one's own change only
    await add_field(a, "oops")
    await wait_fields(b, {"oops"})
    await a.click("#undo")  # type: ignore[attr-defined]
    for _ in range(100):
        if "oops" not in await fields_of(b):
            break
        await asyncio.sleep(0.05)
    assert "oops" not in await fields_of(b) and {"region", "notes"} <= await fields_of(a)
    await a.screenshot(path=str(SHOTS / "designer.png"))  # type: ignore[attr-defined]

    # a third joins late and sees everything
    c = await open_designer(browser, server, ann)
    await wait_fields(c, want)

    # the server restarts mid-session: nothing is lost, editing continues
    server.stop()
    server.start()
    await a.wait_for_selector("#status[data-status='connected']", timeout=15000)  # type: ignore[attr-defined]
    await add_field(a, "after_restart")
    await wait_fields(b, want | {"after_restart"}, within=15)
    await wait_fields(c, want | {"after_restart"}, within=15)
    await asyncio.sleep(0.6)
    async with await rest(server) as http:
        draft = (await http.get("/api/t/acme/apps/claims/draft")).json()["definition"]
    assert want | {"after_restart"} <= set(draft["entities"]["claim"]["fields"])


async def test_a_viewer_cannot_edit_and_publish_creates_a_version(
    server: Server, browser: object
) -> None:
    async with await rest(server) as http:
        await make_tenant(http, "acme")
        await make_app(http, "acme", "claims", CLAIMS)
        viewer = await token_for(http, "acme", "viewer")
        owner = await token_for(http, "acme", "owner")
    v = await open_designer(browser, server, viewer)
    await v.wait_for_selector("#readonly")  # type: ignore[attr-defined]
    assert await v.is_disabled("#add-field")  # type: ignore[attr-defined]
    assert await v.is_disabled("tr[data-field='amount'] input.field-name")  # type: ignore[attr-defined]
    assert await v.is_disabled("#publish")  # type: ignore[attr-defined]

    o = await open_designer(browser, server, owner)
    await add_field(o, "published_field")
    await wait_fields(v, {"published_field"})  # the viewer still sees live changes
    await asyncio.sleep(0.6)  # let the room settle into the REST draft
    await o.fill("#publish-message", "first from the UI")  # type: ignore[attr-defined]
    await o.click("#publish")  # type: ignore[attr-defined]
    await o.wait_for_function(  # type: ignore[attr-defined]
        "document.querySelector('#publish-result').textContent.includes('\"number\"')"
    )
    async with await rest(server) as http:
        versions = (await http.get("/api/t/acme/apps/claims/versions")).json()["items"]
        assert len(versions) == 1
        body = (await http.get("/api/t/acme/apps/claims/versions/1")).json()["definition"]
    assert "published_field" in body["entities"]["claim"]["fields"]
    await o.click("#tab-versions")  # type: ignore[attr-defined]
    await o.wait_for_selector("li[data-version='1']")  # type: ignore[attr-defined]
