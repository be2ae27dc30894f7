"""Plugin UI components: the manifest's custom elements, served per tenant, checked on pages."""

from __future__ import annotations

import asyncio
import copy
import hashlib
from pathlib import Path

import httpx
import pytest

from plinth.errors import ValidationFailed
from plinth.extensions import manifest as manifest_mod
from plinth.metadata.files import read_folder
from plinth.server import Platform
from tests.extensions.conftest import PLUGINS, manifest_text, package
from tests.helpers import make_tenant

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "src" / "plinth" / "demo" / "claims"
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _faults(text: str) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        manifest_mod.parse(text)
    return {f.path: f.code for f in caught.value.faults}


def test_the_manifest_refuses_bad_element_names_modules_and_a_missing_ui_grant() -> None:
    base = manifest_text("fraud-scorer")
    assert [p.name for p in manifest_mod.parse(base).components()] == ["fraud-badge"]
    assert _faults(base.replace("components.fraud-badge", "components.fraudbadge")) == {
        "components.fraudbadge": "format"
    }  # no dash: not a custom element name
    assert _faults(base.replace("components.fraud-badge", "components.plinth-table")) == {
        "components.plinth-table": "reserved"
    }  # the portal's own elements
    assert _faults(base.replace("components.fraud-badge", "components.font-face")) == {
        "components.font-face": "format"
    }  # reserved by HTML
    assert _faults(base.replace('"ui/elements.js"', '"../etc/passwd.js"')) == {
        "components.fraud-badge.module": "format"
    }
    assert _faults(base.replace('capabilities = ["log", "ui"]', 'capabilities = ["log"]')) == {
        "components": "requires"
    }


@SQLITE
async def test_a_module_is_served_immutable_only_to_tenants_that_installed_it(
    platform: Platform, client: httpx.AsyncClient, components: dict[str, Path]
) -> None:
    data = await asyncio.to_thread(package, components, "fraud-scorer")
    r = await client.post("/api/plugins", content=data)
    assert r.status_code == 201, r.text
    js = (PLUGINS["fraud-scorer"] / "ui/elements.js").read_bytes()
    sha = hashlib.sha256(js).hexdigest()
    assert r.json()["modules"] == {"ui/elements.js": {"sha256": sha, "size": len(js)}}
    await make_tenant(client, "acme")
    await make_tenant(client, "beta")
    url = f"/a/acme/-/plugins/fraud-scorer/{sha}.js"
    assert (await client.get(url)).status_code == 404  # published is not installed
    # A version without UI was installed before; the upgrade that adds UI asks the admin to
    # approve `ui` (its JavaScript runs in the portal's origin).
    text = manifest_text("fraud-scorer")
    plain = {
        'version = "1.1.0"': 'version = "1.0.0"',
        'capabilities = ["log", "ui"]': 'capabilities = ["log"]',
        text[text.index("# A custom element") :]: "",
    }
    old = await asyncio.to_thread(package, components, "fraud-scorer", **plain)
    assert (await client.post("/api/plugins", content=old)).status_code == 201
    r = await client.post(
        "/api/t/acme/plugins",
        json={"name": "fraud-scorer", "version": "1.0.0", "grant": {"capabilities": ["log"]}},
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/t/acme/plugins/fraud-scorer/upgrade", json={"version": "1.1.0"})
    assert r.status_code == 412 and r.json()["errors"][0]["path"] == "grant.capabilities.ui"
    assert (await client.get(url)).status_code == 404
    r = await client.post(
        "/api/t/acme/plugins/fraud-scorer/upgrade",
        json={"version": "1.1.0", "grant": {"capabilities": ["log", "ui"]}},
    )
    assert r.status_code == 200, r.text

    r = await client.get(url, headers={"Authorization": ""})  # a portal script import
    assert r.status_code == 200 and r.content == js
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in r.headers["cache-control"]
    again = await client.get(url, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    # Another tenant, another hash, another plugin: all the same 404.
    for other in (
        f"/a/beta/-/plugins/fraud-scorer/{sha}.js",
        f"/a/acme/-/plugins/fraud-scorer/{'0' * 64}.js",
        f"/a/acme/-/plugins/hostile/{sha}.js",
        f"/a/nobody/-/plugins/x/{sha}.js",
    ):
        assert (await client.get(other)).status_code == 404, other
    [badge] = await platform.plugins.ui_components("acme")
    assert badge["url"] == url and badge["props"]["properties"]["score"]["maximum"] == 100
    assert await platform.plugins.ui_components("beta") == []
    # Uninstalled: no longer served (this node forgets its cache at once).
    assert (await client.delete("/api/t/acme/plugins/fraud-scorer")).status_code == 204
    assert (await client.get(url)).status_code == 404


@SQLITE
async def test_publish_checks_plugin_elements_against_the_installed_version(
    client: httpx.AsyncClient, components: dict[str, Path]
) -> None:
    await make_tenant(client, "acme")
    assert (
        await client.post("/api/t/acme/apps", json={"slug": "claims", "name": "Claims"})
    ).status_code == 201
    definition = read_folder(DEMO)[1]
    # Without its workflows: their plugin calls must be installed to publish (a hard check),
    # while a page's plugin element is only a warning, which is what this test is about.
    del definition["workflows"]
    fraud = definition["pages"]["claim_detail"]["components"]["fraud"]
    assert fraud["kind"] == "plugin:fraud-scorer/fraud-badge"

    async def publish(d: dict) -> httpx.Response:
        r = await client.put("/api/t/acme/apps/claims/draft", json=d)
        assert r.status_code == 200, r.text
        return await client.post("/api/t/acme/apps/claims/publish", json={})

    # Not installed: published with a warning at the element's path (the portal shows a
    # placeholder until an admin installs it).
    r = await publish(definition)
    assert r.status_code == 201, r.text
    warned = [m for s in r.json()["steps"] for m in s["messages"] if "path" in m]
    assert {
        "path": "pages.claim_detail.components.fraud.kind",
        "code": "plugin_not_installed",
    }.items() <= warned[0].items()

    data = await asyncio.to_thread(package, components, "fraud-scorer")
    assert (await client.post("/api/plugins", content=data)).status_code == 201
    r = await client.post(
        "/api/t/acme/plugins",
        json={"name": "fraud-scorer", "grant": {"capabilities": ["log", "ui"]}},
    )
    assert r.status_code == 201, r.text
    bad = copy.deepcopy(definition)
    node = bad["pages"]["claim_detail"]["components"]["fraud"]
    node["props"] = {"score": 500, "colour": "red"}
    r = await publish(bad)
    assert r.status_code == 422, r.text
    paths = {e["path"] for e in r.json()["errors"]}
    assert {
        "pages.claim_detail.components.fraud.props.score",
        "pages.claim_detail.components.fraud.props",
    } <= paths | {p.rsplit(".", 1)[0] for p in paths}
    node["kind"] = "plugin:fraud-scorer/fraud-meter"
    node["props"] = {}
    r = await publish(bad)
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "pages.claim_detail.components.fraud.kind"
    good = copy.deepcopy(definition)
    good["pages"]["claim_detail"]["components"]["fraud"]["props"]["label"] = "Risk"
    assert (await publish(good)).status_code == 201
