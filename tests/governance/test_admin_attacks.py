"""A hostile look at administration and IDE sign-in: escalation, other tenants, one-time links,
cookies, secrets and odd input — every refusal a typed 4xx problem."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import httpx
import pytest

from plinth.db import utcnow
from plinth.governance.store import password_tokens
from plinth.server import Platform
from tests.helpers import as_user, make_app, make_tenant, token_for

IDE = {"X-Plinth-IDE": "1"}
PASSWORD = "correct horse battery"


async def _user(client: httpx.AsyncClient, tenant: str, username: str, roles: list[str]) -> dict:
    body = {"username": username, "password": PASSWORD, "roles": roles}
    r = await client.post(f"/api/t/{tenant}/users", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def _access(anon: httpx.AsyncClient, tenant: str, username: str) -> dict[str, str]:
    r = await anon.post(
        f"/api/auth/{tenant}/session/login",
        json={"username": username, "password": PASSWORD},
        headers=IDE,
    )
    assert r.status_code == 200, r.text
    return as_user(anon, r.json()["access_token"])


def _problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, (r.request.method, str(r.request.url), r.text)
    assert r.headers["content-type"] == "application/problem+json", r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_demoted_owner_cannot_use_her_old_access_token_to_promote_herself_back(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    mallory = await _user(client, "acme", "mallory", ["owner"])
    access = await _access(anon, "acme", "mallory")
    r = await client.patch(f"/api/t/acme/users/{mallory['id']}", json={"roles": ["viewer"]})
    assert r.status_code == 200 and r.json()["roles"] == ["viewer"]
    # the token issued while she was owner no longer carries owner powers
    r = await anon.patch(
        f"/api/t/acme/users/{mallory['id']}", json={"roles": ["owner"]}, headers=access
    )
    _problem(r, 401)
    r = await anon.post("/api/t/acme/tokens", json={"name": "x", "role": "owner"}, headers=access)
    _problem(r, 401)
    # a refresh gives her a token with what she has now
    r = await anon.post("/api/auth/acme/session/refresh", headers=IDE)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["roles"] == ["viewer"]
    assert r.json()["user"]["can"]["administer"] is False
    viewer = as_user(anon, r.json()["access_token"])
    r = await anon.patch(
        f"/api/t/acme/users/{mallory['id']}", json={"roles": ["owner"]}, headers=viewer
    )
    _problem(r, 403)
    # taking her out of a group is the same change
    r = await client.put(f"/api/t/acme/groups/admins/members/{mallory['id']}")
    assert r.status_code == 204
    r = await anon.get("/api/t/acme/me", headers=viewer)
    _problem(r, 401)


async def test_users_without_user_manage_cannot_escalate(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    dan = await _user(client, "acme", "dan", ["designer"])
    vic = await _user(client, "acme", "vic", ["viewer"])
    owner = await _user(client, "acme", "olga", ["owner"])
    for name in ("dan", "vic"):
        me = await _access(anon, "acme", name)
        own = dan["id"] if name == "dan" else vic["id"]
        for method, path, body in (
            ("PATCH", f"/api/t/acme/users/{own}", {"roles": ["owner"]}),
            ("PATCH", f"/api/t/acme/users/{owner['id']}", {"disabled": True}),
            ("PUT", f"/api/t/acme/groups/admins/members/{own}", None),
            ("POST", f"/api/t/acme/users/{owner['id']}/password-reset", None),
            ("DELETE", f"/api/t/acme/users/{owner['id']}/sessions", None),
            ("POST", "/api/t/acme/users", {"username": "x", "roles": ["owner"]}),
            ("GET", "/api/t/acme/tokens", None),
            ("POST", "/api/t/acme/tokens", {"name": "x", "role": "owner"}),
            ("GET", "/api/t/acme/audit", None),
            ("GET", "/api/t/acme/roles", None),
            ("GET", f"/api/t/acme/users/{owner['id']}", None),
        ):
            r = await anon.request(method, path, json=body, headers=me)
            _problem(r, 403)
    r = await client.get(f"/api/t/acme/users/{dan['id']}")
    assert r.json()["roles"] == ["designer"] and r.json()["groups"] == []


async def test_another_tenants_owner_reaches_nothing_here(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_tenant(client, "globex")
    ana = await _user(client, "acme", "ana", ["designer"])
    acme_token = (
        await client.post("/api/t/acme/tokens", json={"name": "ci", "role": "owner"})
    ).json()
    await _user(client, "globex", "eve", ["owner"])
    eve = await _access(anon, "globex", "eve")
    for method, path in (
        ("GET", "/api/t/acme/users"),
        ("GET", f"/api/t/acme/users/{ana['id']}"),
        ("PATCH", f"/api/t/acme/users/{ana['id']}"),
        ("POST", f"/api/t/acme/users/{ana['id']}/password-reset"),
        ("DELETE", f"/api/t/acme/users/{ana['id']}/sessions"),
        ("PUT", f"/api/t/acme/groups/x/members/{ana['id']}"),
        ("GET", "/api/t/acme/groups"),
        ("GET", "/api/t/acme/roles"),
        ("GET", "/api/t/acme/tokens"),
        ("DELETE", f"/api/t/acme/tokens/{acme_token['id']}"),
        ("GET", "/api/t/acme/audit"),
        ("GET", "/api/t/acme/audit?format=jsonl"),
    ):
        r = await anon.request(
            method, path, json={"disabled": True} if method == "PATCH" else None, headers=eve
        )
        _problem(r, 403)
    # through her own tenant's routes, acme's records do not exist
    for method, path in (
        ("GET", f"/api/t/globex/users/{ana['id']}"),
        ("PATCH", f"/api/t/globex/users/{ana['id']}"),
        ("POST", f"/api/t/globex/users/{ana['id']}/password-reset"),
        ("DELETE", f"/api/t/globex/users/{ana['id']}/sessions"),
        ("PUT", f"/api/t/globex/groups/x/members/{ana['id']}"),
        ("DELETE", f"/api/t/globex/tokens/{acme_token['id']}"),
    ):
        r = await anon.request(
            method, path, json={"disabled": True} if method == "PATCH" else None, headers=eve
        )
        _problem(r, 404)
    r = await anon.get("/api/t/globex/tokens", headers=eve)
    assert acme_token["id"] not in r.text
    r = await anon.get("/api/t/globex/users", headers=eve)
    assert "ana" not in [u["username"] for u in r.json()["items"]]
    # acme's token is acme's only
    r = await anon.get("/api/t/globex/me", headers=as_user(anon, acme_token["token"]))
    _problem(r, 403)
    assert (await client.get(f"/api/t/acme/users/{ana['id']}")).json()["disabled"] is False


async def test_one_time_links_are_one_time_and_of_one_tenant(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_tenant(client, "globex")
    ana = await _user(client, "acme", "ana", ["designer"])
    first = (await client.post(f"/api/t/acme/users/{ana['id']}/password-reset")).json()["token"]
    second = (await client.post(f"/api/t/acme/users/{ana['id']}/password-reset")).json()["token"]
    assert first != second and first.startswith("pli_")
    set_to = {"password": "mallory's pass"}
    # an earlier link, another tenant's route, a guess: all the same 401
    for tenant, token in (
        ("acme", first),
        ("globex", second),
        ("nope", second),
        ("acme", second[:-1]),
        ("acme", "pli_" + "A" * 43),
        ("acme", "x" * 200),
    ):
        r = await anon.post(f"/api/auth/{tenant}/password", json={"token": token} | set_to)
        _problem(r, 401)
    # spent only once, even by two requests at the same moment
    attempts = await asyncio.gather(
        *(
            anon.post("/api/auth/acme/password", json={"token": second, "password": f"pass {i}xx"})
            for i in range(4)
        )
    )
    assert sorted(r.status_code for r in attempts) == [204, 401, 401, 401]
    r = await anon.post("/api/auth/acme/password", json={"token": second} | set_to)
    _problem(r, 401)
    # an expired link
    third = (await client.post(f"/api/t/acme/users/{ana['id']}/password-reset")).json()["token"]
    async with platform.db.transaction() as conn:
        await conn.execute(
            password_tokens.update()
            .where(password_tokens.c.used_at.is_(None))
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    r = await anon.post("/api/auth/acme/password", json={"token": third} | set_to)
    _problem(r, 401)
    # a disabled user's link sets a password she still cannot sign in with
    fourth = (await client.post(f"/api/t/acme/users/{ana['id']}/password-reset")).json()["token"]
    await client.patch(f"/api/t/acme/users/{ana['id']}", json={"disabled": True})
    r = await anon.post("/api/auth/acme/password", json={"token": fourth} | set_to)
    r = await anon.post(
        "/api/auth/acme/session/login",
        json={"username": "ana", "password": set_to["password"]},
        headers=IDE,
    )
    _problem(r, 401)
    for wrong in ({"token": 5, "password": "x" * 9}, {"password": "x" * 9}, [1], "x"):
        r = await anon.post("/api/auth/acme/password", json=wrong)
        _problem(r, 422)


async def test_cookie_sessions_refuse_cross_site_posts_and_end_on_logout_or_revoke(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    ana = await _user(client, "acme", "ana", ["designer"])
    # a cookie planted before sign-in is replaced by one the server made
    r = await anon.post(
        "/api/auth/acme/session/refresh", headers=IDE | {"Cookie": "plinth_ide_refresh=plr_x"}
    )
    _problem(r, 401)
    r = await anon.post(
        "/api/auth/acme/session/login", json={"username": "ana", "password": PASSWORD}, headers=IDE
    )
    cookie = r.headers["set-cookie"]
    assert "plr_planted" not in cookie and "samesite=strict" in cookie.lower()
    assert "HttpOnly" in cookie
    # what a cross-site form can send: no custom header, a form body
    for path in ("refresh", "logout", "login"):
        r = await anon.post(
            f"/api/auth/acme/session/{path}",
            content=b"username=ana&password=x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code in (403, 422), r.text
        assert "set-cookie" not in r.headers
    # the cookie alone authenticates nothing else
    r = await anon.get("/api/t/acme/me")
    _problem(r, 401)
    # another tenant's session route does not take acme's cookie
    await make_tenant(client, "globex")
    acme_cookie = anon.cookies.get("plinth_ide_refresh", path="/api/auth/acme/session")
    r = await anon.post(
        "/api/auth/globex/session/refresh",
        headers=IDE | {"Cookie": f"plinth_ide_refresh={acme_cookie}"},
    )
    _problem(r, 401)
    # revoking her sessions ends the refresh cookie and the access token at once
    r = await anon.post("/api/auth/acme/session/refresh", headers=IDE)
    assert r.status_code == 200, r.text
    access = as_user(anon, r.json()["access_token"])
    r = await client.delete(f"/api/t/acme/users/{ana['id']}/sessions")
    assert r.json()["revoked"] == 1
    _problem(await anon.get("/api/t/acme/me", headers=access), 401)
    _problem(await anon.post("/api/auth/acme/session/refresh", headers=IDE), 401)
    # logout ends the page's access token, and the refresh token even when replayed from a
    # copy of the cookie; her session elsewhere refreshes its own
    elsewhere = (
        await anon.post("/api/auth/acme/login", json={"username": "ana", "password": PASSWORD})
    ).json()
    access = await _access(anon, "acme", "ana")
    stolen = anon.cookies.get("plinth_ide_refresh", path="/api/auth/acme/session")
    assert (await anon.post("/api/auth/acme/session/logout", headers=IDE)).status_code == 204
    _problem(await anon.get("/api/t/acme/me", headers=access), 401)
    r = await anon.post("/api/auth/acme/refresh", json={"refresh_token": stolen})
    _problem(r, 401)
    r = await anon.post(
        "/api/auth/acme/refresh", json={"refresh_token": elsewhere["refresh_token"]}
    )
    assert r.status_code == 200, r.text
    assert (
        await anon.get("/api/t/acme/me", headers=as_user(anon, r.json()["access_token"]))
    ).status_code == 200
    r = await anon.post("/api/auth/acme/logout", json={"refresh_token": r.json()["refresh_token"]})
    assert r.status_code == 204


async def test_no_secret_reaches_a_response_the_ledger_or_the_log(
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    platform: Platform,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # a debugging operator sees no secret either
    await make_tenant(client, "acme")
    r = await client.post("/api/t/acme/users", json={"username": "dina", "roles": ["designer"]})
    invite = r.json()["invite"]["token"]
    await anon.post("/api/auth/acme/password", json={"token": invite, "password": PASSWORD})
    r = await anon.post(
        "/api/auth/acme/session/login", json={"username": "dina", "password": PASSWORD}, headers=IDE
    )
    refresh = anon.cookies.get("plinth_ide_refresh", path="/api/auth/acme/session")
    access = r.json()["access_token"]
    await anon.post(
        "/api/auth/acme/session/login", json={"username": "dina", "password": "wrong!"}, headers=IDE
    )
    issued = (await client.post("/api/t/acme/tokens", json={"name": "ci", "role": "viewer"})).json()
    reset = await client.post(f"/api/t/acme/users/{r.json()['user']['id'][5:]}/password-reset")
    secrets = [invite, refresh, access, issued["token"], reset.json()["token"], PASSWORD]
    texts = [
        (await client.get("/api/t/acme/audit?format=jsonl")).text,
        (await client.get("/api/t/acme/users")).text,
        (await client.get("/api/t/acme/tokens?include_revoked=true")).text,
        (await anon.get("/api/t/acme/me", headers=as_user(anon, access))).text,
        caplog.text,
    ]
    for text in texts:
        for secret in secrets:
            assert secret and secret not in text
        assert "argon2" not in text and "token_hash" not in text and "wrong!" not in text


# Odd list and audit filters: each is answered (200) or refused as a typed problem, never a
# 500. One platform per database for all of them (a platform per query took a second each).
USER_LIST_QUERIES = [
    "q=%25",
    "q=_",
    "q=%5C",
    "q=%F0%9F%98%80",
    "q=%ED%A0%80",
    "q=" + "a" * 201,
    "role=%22owner%22",
    "role=" + "%FF" * 10,
    "group=%5B%5D",
    "disabled=maybe",
    "limit=0",
    "limit=-1",
    "limit=1e3",
    "limit=99999999999999999999999",
    "cursor=%ED%A0%80",
    "cursor=" + "z" * 300,
]
AUDIT_QUERIES = [
    "cursor=99999999999999999999999",
    "cursor=9223372036854775808",
    "cursor=-1",
    "cursor=9223372036854775808&order=desc",
    "since=garbage",
    "since=0001-01-01T00:00:00%2B14:00",
    "until=9999-12-31T23:59:59-14:00",
    "since=2026-01-01",
    "since=99999999999999",
    "actor=%ED%A0%80",
    "action=*",
    "action=%25",
    "action=user.*.*",
    "resource=" + "%5C" * 500,
    "actor=" + "a" * 20000,
    "limit=1001",
    "format=csv",
    "order=sideways",
]


def _answered_or_problem(r: httpx.Response, query: str) -> None:
    assert r.status_code < 500, (query, r.text)
    if r.status_code != 200:
        assert r.headers["content-type"] == "application/problem+json", (query, r.text)
        assert r.json().get("path") or r.json().get("errors"), (query, r.text)


async def test_odd_user_list_and_audit_filters_are_answered_or_refused_as_problems(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await _user(client, "acme", "ana", ["designer"])
    for query in USER_LIST_QUERIES:
        _answered_or_problem(await client.get(f"/api/t/acme/users?{query}"), query)
    for query in AUDIT_QUERIES:
        _answered_or_problem(await client.get(f"/api/t/acme/audit?{query}"), query)


async def test_odd_user_edits_are_refused_as_problems(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    ana = await _user(client, "acme", "ana", ["designer"])
    url = f"/api/t/acme/users/{ana['id']}"
    for body in (
        {"roles": "owner"},
        {"roles": []},
        {"roles": [None]},
        {"roles": ["Owner"]},
        {"roles": ["platform_admin"]},
        {"groups": [{"x": 1}]},
        {"groups": ["../.."]},
        {"attrs": {"country": 1}},
        {"attrs": ["x"]},
        {"disabled": "perhaps"},
        [],
        "x",
    ):
        r = await client.patch(url, json=body)
        assert 400 <= r.status_code < 500, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = await client.patch(
        url, content=b'{"attrs": {"a": "\\ud800"}}', headers={"content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500, r.text
    for path in ("%F0%9F%98%80", "x" * 5000, "%ED%A0%80", "%2E%2E"):
        r = await client.get(f"/api/t/acme/users/{path}")
        assert 400 <= r.status_code < 500, (path, r.text)
        r = await client.put(f"/api/t/acme/groups/{path}/members/{ana['id']}")
        assert 400 <= r.status_code < 500, (path, r.text)
    r = await client.post(
        "/api/t/acme/users", json={"username": "ana", "password": "x" * 9, "roles": ["viewer"]}
    )
    assert _problem(r, 409)["path"] == "username"
    r = await client.post(
        "/api/t/acme/users",
        json={
            "username": "zed",
            "password": "x" * 9,
            "roles": ["viewer"],
            "attrs": {"k": "\u0000"},
        },
    )
    assert 400 <= r.status_code < 500, r.text


DEFINITION = {
    "entities": {
        "claim": {
            "fields": {
                "amount": {"type": "decimal"},
                "status": {"type": "string"},
            }
        }
    }
}


async def test_rename_refuses_odd_names_ids_and_other_tenants(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_tenant(client, "globex")
    await make_app(client, "acme", "claims", DEFINITION)
    draft = (await client.get("/api/t/acme/apps/claims/draft")).json()
    fid = draft["definition"]["entities"]["claim"]["fields"]["amount"]["id"]
    url = "/api/t/acme/apps/claims/draft/refactor/rename-field"
    for body, status, path in (
        ({"entity": "claim", "field_id": fid, "to": "status"}, 409, "to"),
        ({"entity": "claim", "field_id": fid, "to": "id"}, 409, "to"),
        ({"entity": "claim", "field_id": fid, "to": "Amount"}, 422, None),
        ({"entity": "claim", "field_id": fid, "to": "a b"}, 422, None),
        ({"entity": "claim", "field_id": fid, "to": "ämount"}, 422, None),
        ({"entity": "claim", "field_id": "f_' or 1=1", "to": "x"}, 404, "field_id"),
        ({"entity": "claim", "field_id": "\U0001f600", "to": "x"}, 404, "field_id"),
        ({"entity": "nope", "field_id": fid, "to": "x"}, 404, "entity"),
        ({"entity": "__class__", "field_id": fid, "to": "x"}, 404, "entity"),
        ({"entity": "claim", "field_id": 5, "to": "x"}, 422, None),
        ({"entity": "claim", "field_id": fid, "to": "x" * 64}, 422, None),
    ):
        r = await client.post(url, json=body)
        problem = _problem(r, status)
        if path:
            assert problem["path"] == path
    for tag in (b"r\xb2", b"r" + b"9" * 5000, b"garbage", b"r-1", b"r\xd9\xa1"):
        r = await client.post(
            url,
            json={"entity": "claim", "field_id": fid, "to": "claimed"},
            headers={"If-Match": tag},
        )
        assert 400 <= r.status_code < 500, (tag, r.text)
    # another tenant's owner, and a viewer of this one, rename nothing
    globex = as_user(client, await token_for(client, "globex", "owner"))
    viewer = as_user(client, await token_for(client, "acme", "viewer"))
    for who in (globex, viewer):
        r = await anon.post(url, json={"entity": "claim", "field_id": fid, "to": "x"}, headers=who)
        _problem(r, 403)
    r = await client.post(
        "/api/t/globex/apps/claims/draft/refactor/rename-field",
        json={"entity": "claim", "field_id": fid, "to": "x"},
    )
    _problem(r, 404)
    after = (await client.get("/api/t/acme/apps/claims/draft")).json()["definition"]
    assert set(after["entities"]["claim"]["fields"]) == {"amount", "status"}
    # renaming to its own name changes nothing
    r = await client.post(url, json={"entity": "claim", "field_id": fid, "to": "amount"})
    assert r.status_code == 200 and r.json()["rewritten"] == []


async def test_the_portal_home_of_an_unknown_tenant_is_a_problem(
    anon: httpx.AsyncClient, platform: Platform
) -> None:
    for path in ("/a/nope/", "/a/nope", "/a/%ED%A0%80/", "/a/" + "x" * 3000 + "/"):
        r = await anon.get(path)
        assert r.status_code == 404, (path, r.text)


async def test_clones_and_token_revocations_stay_in_their_tenant(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_tenant(client, "globex")
    await make_app(client, "acme", "claims", DEFINITION)
    globex = as_user(client, await token_for(client, "globex", "owner"))
    viewer = as_user(client, await token_for(client, "acme", "viewer"))
    r = await anon.post("/api/t/globex/apps/claims/clone", json={"slug": "x"}, headers=globex)
    _problem(r, 404)
    for who in (globex, viewer):
        r = await anon.post("/api/t/acme/apps/claims/clone", json={"slug": "x"}, headers=who)
        _problem(r, 403)
    for body in ({"slug": "A B"}, {"slug": 5}, {}, {"slug": "x" * 500}):
        r = await client.post("/api/t/acme/apps/claims/clone", json=body)
        assert 400 <= r.status_code < 500, (body, r.text)
    for token_id in ("%F0%9F%98%80", "x" * 5000, "%ED%A0%80", "1"):
        r = await client.delete(f"/api/t/acme/tokens/{token_id}")
        _problem(r, 404)
    apps = (await client.get("/api/t/acme/apps")).json()
    assert [a["slug"] for a in apps["items"]] == ["claims"]
