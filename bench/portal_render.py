"""Portal first render in Chromium: the claims table page and the claim form, cold and warm.

    ./tests/pages/setup.sh && PYTHONPATH=src python bench/portal_render.py [--runs 15]

A real server (uvicorn, embedded SQLite) with the demo app published, 40 German claims and a
signed-in analyst. Time is read in the page (`performance.now()`, from navigation start) when
the content is in the DOM on an animation frame: the table's 20 rows, or the form's inputs.

- cold: a fresh browser context each run (empty HTTP cache; only the session cookie), so the
  shell, the Lit runtime and the app module are all fetched; the session cookie is renewed
  into an access token, then the data API is queried.
- warm: the same context navigating again: runtime and module come from the HTTP cache
  (immutable), the shell is revalidated.
- baseline (same run): navigating to `/readyz`, a tiny JSON response from the same server —
  the floor of any navigation on this machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

import plinth.server  # noqa: F401  (registers every document kind)
from plinth.metadata.files import read_folder

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "src" / "plinth" / "demo" / "claims"
ADMIN = "plt_bench_admin_token_0123456789abcdef"
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
PORTAL = {"x-plinth-portal": "1"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(base: str) -> None:
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"})
    admin.post("/api/tenants", json={"slug": "acme", "name": "Acme"}).raise_for_status()
    admin.post("/api/t/acme/apps", json={"slug": "claims", "name": "Claims"}).raise_for_status()
    admin.put("/api/t/acme/apps/claims/draft", json=read_folder(DEMO)[1]).raise_for_status()
    admin.post("/api/t/acme/apps/claims/publish", json={}).raise_for_status()
    admin.post(
        "/api/t/acme/users",
        json={
            "username": "analyst",
            "password": "bench-password",
            "roles": ["analyst"],
            "attrs": {"country": "DE"},
        },
    ).raise_for_status()
    data = "/api/t/acme/apps/claims/data"
    holder = admin.post(f"{data}/policyholder", json={"full_name": "Ana", "country": "DE"})
    holder.raise_for_status()
    policy = admin.post(
        f"{data}/policy",
        json={
            "number": "DE-000001",
            "holder": holder.json()["id"],
            "product": "motor",
            "starts_on": "2026-01-01",
        },
    )
    policy.raise_for_status()
    for i in range(40):
        admin.post(
            f"{data}/claim",
            json={
                "reference": f"CL-B-{i:03}",
                "policy": policy.json()["id"],
                "country": "DE",
                "incident_date": "2026-03-01",
                "description": "A bench claim, long enough.",
                "amount": f"{100 + i}.50",
            },
        ).raise_for_status()


def session_cookie(base: str) -> dict:
    r = httpx.post(
        f"{base}/a/acme/-/session/login",
        headers=PORTAL,
        json={"username": "analyst", "password": "bench-password"},
    )
    r.raise_for_status()
    return {
        "name": "plinth_refresh",
        "value": r.cookies["plinth_refresh"],
        "domain": "127.0.0.1",
        "path": "/a/acme/-/session",
        "httpOnly": True,
        "sameSite": "Strict",
    }


PAGES = {  # what must be on screen: a CSS selector and how many matches
    "claims table": ("/a/acme/claims/claims", "plinth-table tr.pl-row", 20),
    "claim form": ("/a/acme/claims/claims/new", "#f-form-amount", 1),
}
# Runs in each document before its own scripts: notes the frame on which the content is there.
WATCH = """(() => {{
  const check = () => document.querySelectorAll({selector!r}).length >= {count}
    ? (window.__rendered = performance.now()) : requestAnimationFrame(check);
  requestAnimationFrame(check);
}})();"""


def rendered(page, url: str) -> float:
    page.goto(url, wait_until="commit")
    page.wait_for_function("window.__rendered !== undefined")
    return float(page.evaluate("window.__rendered"))


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return f"median {statistics.median(xs):6.0f} ms  p90 {p90:6.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    subprocess.run(["sh", str(ROOT / "tests" / "pages" / "setup.sh")], check=True)
    port, data = _port(), tempfile.mkdtemp(prefix="plinth-bench-")
    env = {
        **os.environ,
        "PLINTH_DATA_DIR": data,
        "PLINTH_ADMIN_TOKEN": ADMIN,
        "PYTHONPATH": str(ROOT / "src"),
    }
    env.pop("PLINTH_DATABASE_URL", None)
    server = subprocess.Popen(
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
                time.sleep(0.1)
        seed(base)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            floor = []
            for _ in range(runs):
                ctx = browser.new_context()
                page = ctx.new_page()
                page.goto(f"{base}/readyz")
                floor.append(float(page.evaluate("performance.now()")))
                ctx.close()
            print(f"{'baseline: navigate to /readyz':32} {stats(floor)}")
            for name, (path, ready, count) in PAGES.items():
                cold, warm = [], []
                for _ in range(runs):
                    ctx = browser.new_context()
                    ctx.add_cookies([session_cookie(base)])
                    ctx.add_init_script(WATCH.format(selector=ready, count=count))
                    page = ctx.new_page()
                    cold.append(rendered(page, base + path))
                    warm.append(rendered(page, base + path))
                    ctx.close()
                ratio = statistics.median(cold) / statistics.median(floor)
                print(f"{name + ', cold':32} {stats(cold)}  ({ratio:.1f}x baseline)")
                print(f"{name + ', warm':32} {stats(warm)}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
