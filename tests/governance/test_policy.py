"""Cedar policies: publish-time validation, decisions with explanations, filters, fields."""

from __future__ import annotations

import copy

import httpx
import sqlalchemy as sa

from plinth.governance.access import Resource
from plinth.governance.policy import PER_ROW
from plinth.governance.principal import Principal
from plinth.runtime.filters import compile_filter
from plinth.server import Platform
from tests.governance.apps import CLAIMS_APP
from tests.helpers import make_app, make_tenant


def analyst(tenant_id: str, country: str = "FR", groups: tuple[str, ...] = ()) -> Principal:
    return Principal(
        id=f"user:{country}",
        kind="user",
        roles=frozenset({"analyst"}),
        tenant_id=tenant_id,
        attrs={"country": country, "groups": list(groups)},
    )


async def published(client: httpx.AsyncClient, definition: dict | None = None) -> str:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", definition or CLAIMS_APP)
    r = await client.post("/api/t/acme/apps/claims/publish", json={})
    assert r.status_code in (200, 201), r.text
    platform: Platform = client._transport.app.state.platform  # type: ignore[attr-defined]
    return (await platform.tenants.get("acme")).id


def record(tenant_id: str, **values: object) -> Resource:
    return Resource(
        "record",
        "claim",
        tenant_id,
        attrs={"app": "claims", "entity": "claim", "record": {"id": "r1", **values}},
    )


async def test_invalid_policy_is_refused_at_publish_with_its_path(
    client: httpx.AsyncClient,
) -> None:
    bad = copy.deepcopy(CLAIMS_APP)
    bad["policies"]["country"]["cedar"] = (
        'permit(principal, action == Action::"data.read", resource is claim) '
        'when { resource.colour == "red" };'
    )
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    r = await client.put("/api/t/acme/apps/claims/draft", json=bad)
    if r.status_code == 200:
        r = await client.post("/api/t/acme/apps/claims/publish", json={})
    assert r.status_code == 422, r.text
    assert "policies.country.cedar" in r.text
    assert "colour" in r.text


async def test_decisions_follow_published_policies_and_explain_themselves(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    tid = await published(client)
    authz = platform.authorizer
    fr = analyst(tid, "FR")
    ok = authz.decide(fr, "data.read", record(tid, country="FR", amount=5))
    assert ok.allowed and "default.analyst" in ok.policies
    no = authz.decide(fr, "data.read", record(tid, country="DE", amount=5))
    assert not no.allowed and "analysts_own_country" in no.policies
    # analysts may not delete at all; another tenant's principal never gets in
    assert not authz.decide(fr, "data.delete", record(tid, country="FR")).allowed
    other = analyst("some-other-tenant", "FR")
    assert not authz.decide(other, "data.read", record(tid, country="FR")).allowed


async def test_row_filter_is_a_where_clause_and_pagination_stays_correct(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    tid = await published(client)
    flt = platform.authorizer.row_filter(analyst(tid, "FR"), "data.read", tid, "claims", "claim")
    assert flt == {"not": {"not": {"field": "country", "op": "eq", "value": "FR"}}}
    owner = Principal("user:o", "user", frozenset({"owner"}), tid)
    assert platform.authorizer.row_filter(owner, "data.read", tid, "claims", "claim") is None
    viewer = Principal("user:v", "user", frozenset({"viewer"}), tid)
    assert platform.authorizer.row_filter(viewer, "data.delete", tid, "claims", "claim") == {
        "or": []
    }

    # End to end on this database: the runtime compiles the filter into the entity's SQL,
    # and paging by id over the filtered rows skips nothing and repeats nothing.
    tenant = await platform.tenants.get("acme")
    made = []
    for i in range(1, 31):
        body = {"country": ("FR", "DE", "IT")[i % 3], "amount": i}
        made.append(await platform.records.create(tenant, "claims", "claim", body, owner))
    fr_ids = sorted(r["id"] for r in made if r["country"] == "FR")  # type: ignore[index]
    _, entity = await platform.records.entity(tenant, "claims", "claim")
    table = entity.table
    seen: list[str] = []
    after = ""
    while True:
        async with platform.records.storage.database(tenant).read() as conn:
            page = (
                await conn.execute(
                    sa.select(table)
                    .where(compile_filter(entity, flt), table.c.id > after)
                    .order_by(table.c.id)
                    .limit(4)
                )
            ).all()
        if not page:
            break
        seen += [row.id for row in page]
        assert all(row.country == "FR" for row in page)
        after = page[-1].id
    assert seen == fr_ids and len(seen) == 10


async def test_untranslatable_residual_falls_back_to_per_row(
    client: httpx.AsyncClient, platform: Platform, caplog: object
) -> None:
    app = copy.deepcopy(CLAIMS_APP)
    app["policies"]["odd"] = {
        "cedar": (
            '@id("odd") forbid(principal in Role::"analyst", action == Action::"data.read", '
            "resource is claim) when { resource has amount && resource.amount + 1 > 100 };"
        )
    }
    tid = await published(client, app)
    got = platform.authorizer.row_filter(analyst(tid), "data.read", tid, "claims", "claim")
    assert got == PER_ROW
    assert "per-row" in caplog.text  # type: ignore[attr-defined]
    # the per-row check still refuses what the policy denies
    assert not platform.authorizer.decide(
        analyst(tid), "data.read", record(tid, country="FR", amount=500)
    ).allowed


async def test_field_access_hides_health_notes_outside_the_claims_team(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    tid = await published(client)
    readable, writable = platform.authorizer.field_access(analyst(tid), tid, "claims", "claim")
    assert readable == {"country", "amount", "status"} and writable == readable
    team = analyst(tid, groups=("claims",))
    assert platform.authorizer.field_access(team, tid, "claims", "claim") == (None, None)


async def test_rollback_swaps_the_cached_policy_set(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    tid = await published(client)
    open_app = copy.deepcopy(CLAIMS_APP)
    open_app["policies"].pop("country")
    r = await client.put("/api/t/acme/apps/claims/draft", json=open_app)
    assert r.status_code == 200, r.text
    assert (await client.post("/api/t/acme/apps/claims/publish", json={})).status_code in (200, 201)
    de = record(tid, country="DE")
    assert platform.authorizer.decide(analyst(tid), "data.read", de).allowed
    r = await client.post("/api/t/acme/apps/claims/rollback", json={"version": 1})
    assert r.status_code == 200, r.text
    assert not platform.authorizer.decide(analyst(tid), "data.read", de).allowed
    changes = await platform.governance.audit.list(tid, action="policy.changed")
    assert [(c["data"]["policies"], c["data"]["version"]) for c in changes] == [
        (["country", "health"], 1),
        (["country"], 2),
        (["country"], 1),
    ]


async def test_tenant_defined_role_and_fail_closed_on_policy_error(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    app = copy.deepcopy(CLAIMS_APP)
    app["policies"]["adjusters"] = {
        "cedar": (
            '@id("adjusters_update") permit(principal in Role::"adjuster", action in '
            '[Action::"data.read", Action::"data.update"], resource is claim) '
            'when { resource.country == "FR" };'
        )
    }
    tid = await published(client, app)
    adj = Principal("user:adj", "user", frozenset({"adjuster"}), tid, attrs={"country": "FR"})
    ok = platform.authorizer.decide(adj, "data.update", record(tid, country="FR"))
    assert ok.allowed and ok.policies == ("adjusters_update",)
    assert not platform.authorizer.decide(adj, "data.delete", record(tid, country="FR")).allowed
    # a key for the tenant-defined role can be issued; platform_admin never
    r = await client.post("/api/t/acme/tokens", json={"name": "a", "role": "adjuster"})
    assert r.status_code == 201
    r = await client.post("/api/t/acme/tokens", json={"name": "a", "role": "platform_admin"})
    assert r.status_code == 400 and r.json()["path"] == "role"
    # a record without the attribute a forbid reads: Cedar errors, we deny rather than skip
    ana = analyst(tid)
    no_country = Resource(
        "record", "claim", tid, attrs={"app": "claims", "entity": "claim", "record": None}
    )
    assert not platform.authorizer.decide(ana, "data.read", no_country).allowed


def test_memoised_record_decisions_still_follow_what_the_policies_read() -> None:
    """Decisions are memoised per what Cedar sees that matters; none of it may go stale."""
    from plinth.governance.policy import CedarAuthorizer

    app = copy.deepcopy(CLAIMS_APP)
    app["policies"]["big"] = {
        "cedar": '@id("no_big_updates") forbid(principal in Role::"analyst", action == '
        'Action::"data.update", resource is claim) when { resource.amount > 100 };'
    }
    app["policies"]["one"] = {
        "cedar": '@id("not_r9") forbid(principal, action == Action::"data.delete", '
        'resource == claim::"r9");'
    }
    authz = CedarAuthorizer()
    authz.install("t", "claims", app)
    fr = analyst("t", "FR")
    owner = Principal("user:o", "user", frozenset({"owner"}), "t")

    def rec(rid: str, **values: object) -> Resource:
        attrs = {"app": "claims", "entity": "claim", "record": {"id": rid, **values}}
        return Resource("record", "claim", "t", attrs=attrs)

    for _ in range(2):  # the second round answers from the memo: the same answers
        # reads see only the country; updates also the amount; fields no policy reads vary
        assert authz.decide(fr, "data.read", rec("r1", country="FR", amount=500)).allowed
        assert authz.decide(fr, "data.read", rec("r2", country="FR", amount=5)).allowed
        assert not authz.decide(fr, "data.read", rec("r3", country="DE", amount=5)).allowed
        assert authz.decide(fr, "data.update", rec("r1", country="FR", amount=5)).allowed
        assert not authz.decide(fr, "data.update", rec("r1", country="FR", amount=500)).allowed
        # a principal with other attributes is another key
        assert authz.decide(analyst("t", "DE"), "data.read", rec("r3", country="DE")).allowed
        # a policy naming one record makes the record's identity part of the key
        assert authz.decide(owner, "data.delete", rec("r1", country="FR")).allowed
        no = authz.decide(owner, "data.delete", rec("r9", country="FR"))
        assert not no.allowed and no.policies == ("not_r9",)
        # a record without the attribute a forbid reads still fails closed
        assert not authz.decide(fr, "data.read", rec("r4", amount=5)).allowed
    # publishing a new policy set replaces every memoised answer
    opened = copy.deepcopy(app)
    opened["policies"].pop("country")
    authz.install("t", "claims", opened)
    assert authz.decide(fr, "data.read", rec("r3", country="DE", amount=5)).allowed
