"""Pages: serving an app's Web Components module from the version-hash cache vs compiling it
on every request, and the portal's three first-load requests (shell, module, runtime).

    PYTHONPATH=src python bench/pages.py        (needs tests/pages/setup.sh run once)
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from plinth.compiler.targets.spec import app_spec
from plinth.compiler.targets.webcomponents import compile_module
from plinth.metadata.files import read_folder
from plinth.server.app import create_app
from plinth.server.platform import Platform
from plinth.settings import Settings

DEMO = Path(__file__).parents[1] / "src" / "plinth" / "demo" / "claims"
ADMIN = "plt_bench_admin_token_0123456789abcdef"
N = 300


async def main() -> None:
    definition = read_folder(DEMO)[1]
    spec_args = ("acme", "claims", "Claims", 1, "ab" * 32, definition)
    t0 = time.perf_counter()
    for _ in range(N):
        compile_module(app_spec(*spec_args), "/a/-/runtime.x.js")
    compile_us = (time.perf_counter() - t0) / N * 1e6

    with tempfile.TemporaryDirectory() as tmp:
        platform = Platform(Settings(data_dir=Path(tmp), admin_token=ADMIN))
        await platform.start()
        transport = httpx.ASGITransport(app=create_app(platform=platform))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://b", headers={"Authorization": f"Bearer {ADMIN}"}
        ) as c:
            await c.post("/api/tenants", json={"slug": "acme", "name": "Acme"})
            await c.post("/api/t/acme/apps", json={"slug": "claims"})
            await c.put("/api/t/acme/apps/claims/draft", json=definition)
            digest = (await c.post("/api/t/acme/apps/claims/publish", json={})).json()["version"][
                "hash"
            ][:16]
            shell = await c.get("/a/acme/claims/claims/new")
            runtime = shell.text.split('modulepreload" href="')[1].split('"')[0]
            module = f"/a/acme/claims/-/app.{digest}.js"

            async def timed(url: str) -> float:
                start = time.perf_counter()
                r = await c.get(url)
                assert r.status_code == 200, r.text
                return (time.perf_counter() - start) * 1e3

            served = [await timed(module) for _ in range(N)]
            first_load = [
                await timed("/a/acme/claims/claims/new")
                + await timed(module)
                + await timed(runtime)
                for _ in range(50)
            ]
        await platform.stop()
    served_us = statistics.median(served) * 1e3
    print(f"compile the module (spec + JS), per call:  {compile_us:8.1f} µs")
    print(
        f"GET the module, cached (median, in-proc):  {served_us:8.1f} µs  "
        f"(compiling is {compile_us / served_us:.1%} of it; the rest is the active-version "
        "lookup)"
    )
    print(f"portal first load, 3 requests (median):    {statistics.median(first_load):8.1f} ms")
    print(f"module requests / compilations:            {N + 50} / {platform.artifacts.compiled}")


if __name__ == "__main__":
    asyncio.run(main())
