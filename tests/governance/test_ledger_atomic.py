"""An audited change and its ledger entry commit together: both, or neither.

The ledger is made to refuse one action's entries inside the database (a trigger, as a full
disk or a lost connection would at that moment): the change that writes that entry must not
be committed either, and the API answers a typed error. The normal path leaves the entry in a
chain that verifies.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from plinth.server import Platform
from plinth.settings import Settings
from tests.governance.apps import CLAIMS_APP
from tests.helpers import CLAIMS, as_user, make_app, make_tenant, refusing, run_cli


async def _actions(platform: Platform, tenant_id: str | None) -> list[str]:
    return [e["action"] for e in await platform.governance.audit.list(tenant_id, limit=1000)]


async def _tokens(platform: Platform, tenant_id: str) -> list[str]:
    return [t["name"] for t in await platform.tokens.list(tenant_id, include_revoked=True)]


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "audit_unavailable"


async def test_a_token_the_ledger_cannot_record_is_not_issued(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    before = await _actions(platform, tid)
    async with refusing(platform, "token.issued"):
        r = await client.post("/api/t/acme/tokens", json={"name": "ci", "role": "owner"})
    _refused(r)
    assert await _tokens(platform, tid) == []  # no token without its entry
    assert await _actions(platform, tid) == before

    r = await client.post("/api/t/acme/tokens", json={"name": "ci", "role": "owner"})
    assert r.status_code == 201, r.text
    key = r.json()
    assert await _tokens(platform, tid) == ["ci"]
    issued = await platform.governance.audit.list(tid, action="token.issued")
    assert [(e["resource"], e["data"]["role"]) for e in issued] == [(f"token:{key['id']}", "owner")]
    report = await platform.governance.audit.verify(tid)
    assert report.ok, report


async def test_a_revocation_the_ledger_cannot_record_leaves_the_token_working(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    r = await client.post("/api/t/acme/tokens", json={"name": "ci", "role": "designer"})
    key = r.json()
    async with refusing(platform, "token.revoked"):
        r = await client.delete(f"/api/t/acme/tokens/{key['id']}")
    _refused(r)
    platform.tokens.forget()  # not a cache answering: the row itself is still active
    r = await client.get("/api/t/acme/apps", headers=as_user(client, key["token"]))
    assert r.status_code == 200, r.text
    assert "token.revoked" not in await _actions(platform, tid)

    assert (await client.delete(f"/api/t/acme/tokens/{key['id']}")).status_code == 204
    r = await client.get("/api/t/acme/apps", headers=as_user(client, key["token"]))
    assert r.status_code == 401
    # one entry, in the tenant's chain (none beside it in the platform's)
    assert (await _actions(platform, tid)).count("token.revoked") == 1
    assert "token.revoked" not in await _actions(platform, None)
    assert (await platform.governance.audit.verify(tid)).ok


async def test_a_role_grant_the_ledger_cannot_record_is_not_granted(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    body = {"username": "ana", "password": "correct horse battery", "roles": ["viewer"]}
    async with refusing(platform, "user.created"):
        _refused(await client.post("/api/t/acme/users", json=body))
    assert (await client.get("/api/t/acme/users")).json()["items"] == []
    r = await client.post("/api/t/acme/users", json=body)
    assert r.status_code == 201, r.text
    ana = r.json()

    async with refusing(platform, "user.updated"):
        r = await client.patch(f"/api/t/acme/users/{ana['id']}", json={"roles": ["owner"]})
    _refused(r)
    assert (await client.get(f"/api/t/acme/users/{ana['id']}")).json()["roles"] == ["viewer"]
    async with refusing(platform, "group.member_added"):
        _refused(await client.put(f"/api/t/acme/groups/claims/members/{ana['id']}"))
    assert (await client.get(f"/api/t/acme/users/{ana['id']}")).json()["groups"] == []

    r = await client.patch(f"/api/t/acme/users/{ana['id']}", json={"roles": ["owner"]})
    assert r.status_code == 200, r.text
    # a sign-in's entry (group-committed, after its commit) joins the same chain
    r = await client.post(
        "/api/auth/acme/login", json={"username": "ana", "password": body["password"]}
    )
    assert r.status_code == 200, r.text
    assert "auth.login" in await _actions(platform, tid)
    updated = await platform.governance.audit.list(tid, action="user.updated")
    assert [e["data"]["roles"] for e in updated] == [["owner"]]
    assert (await _actions(platform, tid)).count("user.created") == 1
    assert (await platform.governance.audit.verify(tid)).ok


async def test_a_publish_whose_policy_change_the_ledger_cannot_record_is_not_published(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    await make_app(client, "acme", "claims", CLAIMS_APP)
    async with refusing(platform, "policy.changed"):
        _refused(await client.post("/api/t/acme/apps/claims/publish", json={}))
    r = await client.get("/api/t/acme/apps/claims/versions")
    assert r.status_code == 200 and r.json()["items"] == [], r.text
    assert "app.published" not in await _actions(platform, tid)

    r = await client.post("/api/t/acme/apps/claims/publish", json={})
    assert r.status_code in (200, 201), r.text
    actions = await _actions(platform, tid)
    # the publish, then the policies it changed, each once
    assert [a for a in actions if a in ("app.published", "policy.changed")] == [
        "app.published",
        "policy.changed",
    ]
    assert (await platform.governance.audit.verify(tid)).ok


async def test_a_compliance_profile_or_waiver_the_ledger_cannot_record_is_not_kept(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    async with refusing(platform, "compliance.profile"):
        _refused(await client.put("/api/t/acme/compliance/profile", json={"countries": ["DE"]}))
    [acme] = await platform.tenants.list({tid})  # its row, read afresh
    assert "compliance" not in acme.settings

    await make_app(client, "acme", "claims", CLAIMS_APP)
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    waiver = {
        "rule": "pci_dss.pan_encrypted",
        "reason": "Card vault moves next month",
        "until": until,
    }
    async with refusing(platform, "compliance.waiver"):
        _refused(await client.post("/api/t/acme/apps/claims/compliance/waivers", json=waiver))
    assert (await client.get("/api/t/acme/apps/claims/compliance/waivers")).json()["items"] == []

    r = await client.post("/api/t/acme/apps/claims/compliance/waivers", json=waiver)
    assert r.status_code == 201, r.text
    assert (await _actions(platform, tid)).count("compliance.waiver") == 1
    assert (await platform.governance.audit.verify(tid)).ok


def test_tokens_made_at_the_command_line_are_in_the_ledger(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)

    async def tenant() -> None:
        platform = Platform(settings)
        await platform.start()
        try:
            await platform.tenants.create("acme", "Acme")
        finally:
            await platform.stop()

    async def ledger() -> tuple[list[dict], list[dict], bool]:
        platform = Platform(settings)
        await platform.start()
        try:
            tid = (await platform.tenants.get("acme")).id
            audit = platform.governance.audit
            ok = (await audit.verify(tid)).ok and (await audit.verify(None)).ok
            return await audit.list(tid), await audit.list(None), ok
        finally:
            await platform.stop()

    asyncio.run(tenant())
    env = {"PLINTH_DATA_DIR": str(settings.data_dir), "PLINTH_DATABASE_URL": database_url}
    run_cli(env, "token", "create", "acme", "--role", "viewer", "--name", "reports")
    run_cli(env, "token", "rotate-admin")
    run_cli(env, "token", "rotate-admin")
    in_tenant, in_platform, ok = asyncio.run(ledger())
    assert [(e["action"], e["data"].get("name")) for e in in_tenant] == [
        ("token.issued", "reports")
    ]
    assert in_tenant[0]["actor"].startswith("cli:")
    # each rotation: the token it revoked (none the first time), then the one it issued
    assert [e["action"] for e in in_platform if e["action"].startswith("token.")] == [
        "token.issued",
        "token.revoked",
        "token.issued",
    ]
    assert ok


async def test_a_refused_entry_is_named_in_the_log_without_its_data(
    client: httpx.AsyncClient, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator reads which entry the ledger refused, and why; what the entry holds (a
    user's attributes, a task's comment) stays in the ledger, not in every log it ships to."""
    await make_tenant(client, "acme")
    body = {"username": "ana", "password": "correct horse battery", "roles": ["viewer"]}
    ana = (await client.post("/api/t/acme/users", json=body)).json()
    caplog.clear()
    async with refusing(platform, "user.updated"):
        r = await client.patch(
            f"/api/t/acme/users/{ana['id']}", json={"attrs": {"clearance": "cosmic-7731"}}
        )
    _refused(r)
    said = [m.getMessage() for m in caplog.records if m.levelno >= logging.ERROR]
    assert any("user.updated" in m and "ledger refuses" in m for m in said), said
    assert not [m for m in said if "cosmic-7731" in m], said


async def test_a_co_edited_draft_the_ledger_cannot_record_answers_503_not_500(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """A REST write of a draft that has a co-editing room goes into the room's log first; its
    REST draft refused for its `draft.updated` entry is a typed 503 (it was an assertion, a
    500), and the edit, kept in the log, reaches the draft with its entry once the ledger
    takes it again."""
    await make_tenant(client, "acme")
    tid = (await platform.tenants.get("acme")).id
    await make_app(client, "acme", "claims", CLAIMS)
    await platform.designer.room(await platform.tenants.get("acme"), "claims")  # co-edited
    async with refusing(platform, "draft.updated"):
        _refused(await client.put("/api/t/acme/apps/claims/draft", json=CLAIMS_APP))
    r = await client.get("/api/t/acme/apps/claims/draft")
    assert r.json()["definition"]["entities"].keys() == CLAIMS_APP["entities"].keys()
    updated = await platform.governance.audit.list(tid, action="draft.updated")
    assert updated[-1]["data"]["revision"] == r.json()["revision"]
    assert (await platform.governance.audit.verify(tid)).ok


async def test_the_admin_token_a_first_serve_generates_is_in_the_ledger(
    database_url: str, tmp_path: Path
) -> None:
    """`plinth serve` (or `demo`) on a fresh platform generates its first admin token and
    shows it: issued by the operator at the shell, in the platform's chain like a rotation
    (it was the one platform admin token with no entry)."""
    from plinth.cli.main import _admin_token

    platform = Platform(Settings(data_dir=tmp_path / "data", database_url=database_url))
    await platform.start()
    try:
        assert await _admin_token(platform, rotate=False) is not None
        assert await _admin_token(platform, rotate=False) is None  # one exists: none again
        issued = await platform.governance.audit.list(None, action="token.issued")
        assert [e["actor"].startswith("cli:") for e in issued] == [True]
        assert (await platform.governance.audit.verify(None)).ok
    finally:
        await platform.stop()
