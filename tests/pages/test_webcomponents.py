"""The webcomponents target and the portal: valid JS, compiled once per version, immutable."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from plinth.compiler.targets.spec import app_spec
from plinth.compiler.targets.webcomponents import compile_module
from tests.helpers import as_user, make_app, make_tenant, token_for

pytestmark = pytest.mark.usefixtures("runtime_built")


async def publish_demo(client, demo) -> str:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", demo)
    r = await client.post("/api/t/acme/apps/claims/publish", json={})
    assert r.status_code == 201, r.text
    return r.json()["version"]["hash"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is needed to check the JS")
def test_the_module_is_valid_javascript(demo, tmp_path):
    spec = app_spec("acme", "claims", "Claims", 1, "ab" * 32, demo)
    assert "health_notes" in spec["entities"]["claim"]["fields"]
    module = tmp_path / "app.mjs"
    module.write_text(compile_module(spec, "/a/-/runtime.x.js"))
    done = subprocess.run(["node", "--check", str(module)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "definePages" in module.read_text() and "</" not in module.read_text()


async def test_portal_serves_shell_module_and_runtime(client, anon, platform, demo, tmp_path):
    digest = (await publish_demo(client, demo))[:16]
    shell = await anon.get("/a/acme/claims/claims/some-id")
    assert shell.status_code == 200 and shell.headers["cache-control"] == "no-cache"
    assert f"/a/acme/claims/-/app.{digest}.js" in shell.text
    assert "<plinth-app-claims>" in shell.text
    runtime_url = shell.text.split('modulepreload" href="')[1].split('"')[0]

    mod = await anon.get(f"/a/acme/claims/-/app.{digest}.js")
    assert mod.status_code == 200
    assert mod.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert mod.headers["content-type"].startswith("text/javascript")
    assert runtime_url in mod.text
    again = await anon.get(
        f"/a/acme/claims/-/app.{digest}.js", headers={"If-None-Match": mod.headers["etag"]}
    )
    assert again.status_code == 304
    assert platform.artifacts.compiled == 1  # compiled once, served from the cache after

    rt = await anon.get(runtime_url)
    assert rt.status_code == 200 and "immutable" in rt.headers["cache-control"]
    if shutil.which("node"):
        (tmp_path / "rt.mjs").write_bytes(rt.content)
        rt_file = str(tmp_path / "rt.mjs")
        check = await asyncio.to_thread(subprocess.run, ["node", "--check", rt_file])
        assert check.returncode == 0


async def test_a_new_version_gets_a_new_module_and_the_old_one_is_gone(client, anon, demo):
    first = (await publish_demo(client, demo))[:16]
    demo["pages"]["claims"]["title"] = "All claims"
    await client.put("/api/t/acme/apps/claims/draft", json=demo)
    r = await client.post("/api/t/acme/apps/claims/publish", json={})
    second = r.json()["version"]["hash"][:16]
    assert second != first
    assert (await anon.get(f"/a/acme/claims/-/app.{first}.js")).status_code == 404
    mod = await anon.get(f"/a/acme/claims/-/app.{second}.js")
    assert "All claims" in mod.text


async def test_unpublished_or_unknown_apps_are_not_found(client, anon):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "draft-only")
    assert (await anon.get("/a/acme/draft-only/")).status_code == 404
    assert (await anon.get("/a/nobody/claims/")).status_code == 404
    assert (await anon.get("/a/-/runtime.0000.js")).status_code == 404


async def test_me_needs_a_token_of_that_tenant(client, anon):
    await make_tenant(client, "acme")
    await make_tenant(client, "other")
    token = await token_for(client, "acme", "viewer")
    assert (await anon.get("/a/acme/claims/-/me")).status_code == 401
    me = await anon.get("/a/acme/claims/-/me", headers=as_user(anon, token))
    assert me.status_code == 200 and me.json()["roles"] == ["viewer"]
    assert (await anon.get("/a/other/claims/-/me", headers=as_user(anon, token))).status_code == 403


async def test_the_designer_gets_the_component_catalogue(client, anon):
    assert (await anon.get("/api/pages/components")).status_code == 401
    kinds = (await client.get("/api/pages/components")).json()["kinds"]
    assert kinds["form"]["props"]["required"] == ["entity"]
    assert kinds["button"]["events"] == ["click"]
