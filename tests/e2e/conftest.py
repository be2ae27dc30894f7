"""Browser tests: a real uvicorn server on 127.0.0.1 and Debian's Chromium via Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from plinth.metadata.files import read_folder
from tests.helpers import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN = "plt_e2e_admin_token_0123456789abcdef"
ROOT = Path(__file__).parents[2]
DEMO = ROOT / "src" / "plinth" / "demo" / "claims"
# The README's pictures are refreshed on request (PLINTH_SCREENSHOTS=1 ./scripts/test
# tests/e2e); otherwise a test run's screenshots go to a temp folder and the checkout stays clean.
SHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("PLINTH_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "plinth-screenshots"
)
SHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a Plinth server (SQLite) running in its own process."""
    subprocess.run(["sh", str(ROOT / "tests" / "pages" / "setup.sh")], check=True, timeout=300)
    port = free_port()
    data = tmp_path_factory.mktemp("e2e-data")
    env = {
        **os.environ,
        "PLINTH_DATA_DIR": str(data),
        "PLINTH_ADMIN_TOKEN": ADMIN,
        "PYTHONPATH": str(ROOT / "src"),
    }
    env.pop("PLINTH_DATABASE_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "plinth.server.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (never `playwright install`).

    Module-scoped: Playwright's sync API holds an event loop while open, which would stop
    the async tests of other layers that run after these in the same session.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# End users of the e2e tenant: a customer who files claims, an analyst who works them. The
# demo's policies let analysts see only their own country's claims, so `country` matters.
USERS = {
    "customer": {
        "password": "e2e-password-cara",
        "roles": ["customer"],
        "attrs": {"country": "DE"},
    },
    "analyst": {
        "password": "e2e-password-ana",
        "roles": ["analyst"],
        "groups": ["claims"],
        "attrs": {"country": "DE"},
    },
}


def sign_in(page: object, username: str) -> None:
    """Fill the portal's sign-in form (the page is already at a portal address)."""
    page.get_by_label("Username").fill(username)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(USERS[username]["password"])  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.locator(".pl-user", has_text=username).wait_for()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def published(server: str) -> dict[str, str]:
    """The demo claims app published on the server, with its end users created via the API."""
    admin = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.post("/api/tenants", json={"slug": "acme", "name": "Acme"}).status_code == 201
    # The demo's claim page shows the fraud scorer's <fraud-badge>: publish and install it
    # (its build is cached by source hash in PLINTH_CACHE_DIR, shared with the server).
    from plinth.extensions import build, manifest, package

    source = ROOT / "examples" / "plugins" / "fraud-scorer"
    text = (source / build.MANIFEST).read_text()
    modules = package.read_modules(manifest.parse(text), source)
    data = package.pack(text, build.build(source).read_bytes(), modules=modules)
    r = admin.post(
        "/api/plugins", content=data, headers={"Content-Type": "application/zip"}, timeout=60
    )
    assert r.status_code == 201, r.text
    r = admin.post(
        "/api/t/acme/plugins",
        json={"name": "fraud-scorer", "grant": {"capabilities": ["log", "ui"]}},
    )
    assert r.status_code == 201, r.text
    r = admin.post("/api/t/acme/apps", json={"slug": "claims", "name": "Claims"})
    assert r.status_code == 201, r.text
    definition = read_folder(DEMO)[1]  # its policies let customers file claims
    # Its claims workflow calls the fraud-scorer plugin, which publish requires the tenant to
    # have installed; these browser tests do not build plugins (tests/workflows runs it).
    definition.pop("workflows", None)
    r = admin.put("/api/t/acme/apps/claims/draft", json=definition)
    assert r.status_code == 200, r.text
    r = admin.post("/api/t/acme/apps/claims/publish", json={})
    assert r.status_code == 201, r.text
    # The customer's account names her policyholder record (attribute `subject`): the demo's
    # policies show a customer only the policies of that record.
    data = "/api/t/acme/apps/claims/data"
    r = admin.post(f"{data}/policyholder", json={"full_name": "Ana Lima", "country": "DE"})
    assert r.status_code == 201, r.text
    holder = r.json()["id"]
    for username, spec in USERS.items():
        body = {"username": username, **spec}
        if "customer" in spec["roles"]:
            body["attrs"] = {**spec["attrs"], "subject": holder}  # type: ignore[dict-item]
        r = admin.post("/api/t/acme/users", json=body)
        assert r.status_code == 201, r.text
    return {"base": server, "holder": holder}


def wait_for_task(page: object, task: object, tries: int = 50) -> None:
    """Reload the inbox until `task` is listed (the embedded worker creates tasks shortly
    after the step before them ends)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(tries):
        try:
            task.wait_for(timeout=400)  # type: ignore[attr-defined]
            return
        except PlaywrightTimeout:
            pass
        with page.expect_response(  # type: ignore[attr-defined]
            lambda r: r.url.split("?")[0].endswith("/tasks")
        ):
            page.reload()  # type: ignore[attr-defined]
    raise AssertionError("the task never reached the inbox")
