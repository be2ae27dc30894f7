"""Residency routing across regions: two SQLite files, or two PostgreSQL databases."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from plinth.errors import Conflict, ValidationFailed
from plinth.server import Platform
from plinth.settings import Settings
from plinth.tenancy import ComplianceProfile, Region, ResidencyRefused, route
from tests.conftest import ADMIN_TOKEN, _pg_admin, _pg_dsn
from tests.helpers import make_tenant

REGIONS = {
    "default": Region("default", "sqlite://", "eu-central"),
    "cn": Region("cn", "sqlite://", "cn"),
    "us": Region("us", "sqlite://", "us-east"),
}


def test_route_picks_the_first_allowed_region():
    profile = ComplianceProfile(countries=("DE", "CN", "US"))
    assert route(REGIONS, ("default", "cn"), profile, "DE").name == "default"
    assert route(REGIONS, ("default", "cn"), profile, "CN").name == "cn"  # PIPL art. 40
    assert route(REGIONS, ("us", "default"), profile, "DE").name == "us"  # no residency


def test_route_refuses_when_no_region_is_allowed():
    profile = ComplianceProfile(countries=("CN",))
    with pytest.raises(ResidencyRefused) as err:
        route(REGIONS, ("default", "us"), profile, "CN")
    assert err.value.path == "country" and err.value.status == 409
    assert "cn" in err.value.detail and "default (eu-central)" in err.value.detail
    # self-imposed residency narrows further; the subject country defaults from the profile
    own = ComplianceProfile(
        countries=("DE",), residency={"DE": ("eu-central",)}, default_country="DE"
    )
    assert route(REGIONS, ("us", "default"), own, None).name == "default"
    with pytest.raises(ResidencyRefused):
        route(REGIONS, ("us", "cn"), own, None)


@pytest.fixture
def region_urls(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two more databases of the same dialect as the platform's, one per extra region."""
    if database_url.startswith("sqlite"):
        yield {name: f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}" for name in ("eu", "cn")}
        return
    names = {r: f"plinth_test_{r}_{secrets.token_hex(5)}" for r in ("eu", "cn")}
    for db in names.values():
        asyncio.run(_pg_admin(f'CREATE DATABASE "{db}"'))
    try:
        yield {
            r: _pg_dsn(db).replace("postgresql://", "postgresql+asyncpg://", 1)
            for r, db in names.items()
        }
    finally:
        for db in names.values():
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


async def test_records_land_in_the_routed_region(database_url, region_urls, tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        regions={
            "eu": {"url": region_urls["eu"], "location": "eu-central"},
            "cn": {"url": region_urls["cn"], "location": "cn"},
        },
    )
    platform = Platform(settings)
    await platform.start()
    try:
        tenant = await platform.tenants.create("globex")
        await platform.compliance.set_profile(
            tenant, {"countries": ["DE", "CN"], "regions": ["eu", "cn"]}
        )
        tenant = await platform.tenants.get("globex")
        assert platform.regions.region_for(tenant, "DE").name == "eu"
        assert platform.regions.region_for(tenant, "CN").name == "cn"
        # What the runtime will do: write each subject's record into its region's database.
        for country in ("DE", "CN"):
            region = platform.regions.region_for(tenant, country)
            db = platform.regions.database(region.name)
            async with db.transaction() as conn:
                await conn.execute(
                    sa.text(
                        "CREATE TABLE IF NOT EXISTS person (name VARCHAR(40), country VARCHAR(2))"
                    )
                )
                await conn.execute(
                    sa.text("INSERT INTO person VALUES (:n, :c)"),
                    {"n": f"subject-{country}", "c": country},
                )
        for name, expected in (("eu", ["DE"]), ("cn", ["CN"])):
            async with platform.regions.database(name).read() as conn:
                rows = (await conn.execute(sa.text("SELECT country FROM person"))).all()
            assert [r.country for r in rows] == expected
        # A tenant limited to the EU region cannot take a Chinese subject's record.
        await platform.compliance.set_profile(
            tenant, {"countries": ["DE", "CN"], "regions": ["eu"]}
        )
        tenant = await platform.tenants.get("globex")
        with pytest.raises(ResidencyRefused):
            platform.regions.region_for(tenant, "CN")
        with pytest.raises(ValidationFailed) as err:
            await platform.compliance.set_profile(tenant, {"regions": ["mars"]})
        assert err.value.faults[0].path == "compliance.regions[0]"
    finally:
        await platform.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_region_settings_are_refused_with_their_path(database_url, tmp_path):
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, regions={"cn": {"location": "cn"}}
    )
    with pytest.raises(ValidationFailed) as err:
        Platform(settings)
    assert err.value.faults[0].path == "regions.cn.url"


async def test_profile_over_http(client):
    await make_tenant(client, "initech")
    r = await client.put(
        "/api/t/initech/compliance/profile",
        json={"countries": ["DE", "de"], "jurisdictions": ["gdpr", "nope"]},
    )
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert paths == {"compliance.countries[1]"}
    r = await client.put(
        "/api/t/initech/compliance/profile",
        json={"countries": ["DE"], "jurisdictions": ["gdpr", "nope"]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "compliance.jurisdictions[1]"
    r = await client.put("/api/t/initech/compliance/profile", json={"countries": ["DE", "CN"]})
    assert r.status_code == 200
    r = await client.get("/api/t/initech/compliance/profile")
    assert r.json()["profile"]["countries"] == ["DE", "CN"]
    assert r.json()["regions"] == [{"name": "default", "location": "local"}]


async def test_a_tenant_is_created_in_a_known_region_only(client):
    r = await client.post("/api/tenants", json={"slug": "umbrella", "region": "mars"})
    assert r.status_code == 422
    assert r.json()["errors"][0] == {
        "path": "region",
        "code": "unknown_region",
        "message": "no region named 'mars'; known: default",
    }


PERSON = {
    "entities": {
        "person": {
            "fields": {
                "name": {"type": "string", "classification": "pii"},
                "country": {"type": "string", "classification": "none"},
            },
            "subject": {"country_field": "country"},
        }
    }
}


async def test_the_runtime_writes_each_subject_to_its_region_or_refuses(
    database_url, region_urls, tmp_path
):
    from plinth.governance.principal import Principal
    from plinth.tenancy.regions import ResidencyRefused as Refused

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        regions={
            "eu": {"url": region_urls["eu"], "location": "eu-central"},
            "cn": {"url": region_urls["cn"], "location": "cn"},
        },
    )
    platform = Platform(settings)
    await platform.start()
    try:
        tenants = {}
        for slug, regions in (("in-cn", ["cn"]), ("in-eu", ["eu"]), ("both", ["eu", "cn"])):
            t = await platform.tenants.create(slug)
            await platform.compliance.set_profile(
                t,
                {  # packs are tested elsewhere
                    "countries": ["CN", "DE"],
                    "jurisdictions": ["pci_dss"],
                    "regions": regions,
                },
            )
            t = tenants[slug] = await platform.tenants.get(slug)
            await platform.metadata.create_app(t, "crm")
            await platform.metadata.put_draft(t, "crm", PERSON)
            await platform.metadata.publish(t, "crm", _admin())
        owner = {
            s: Principal(f"user:{s}", "user", frozenset({"owner"}), t.id)
            for s, t in tenants.items()
        }

        async def create(slug, country):
            return await platform.records.create(
                tenants[slug],
                "crm",
                "person",
                {"name": f"subject {country}", "country": country},
                owner[slug],
            )

        # a tenant homed in cn stores its Chinese subjects there, in the cn database
        await create("in-cn", "CN")
        db = platform.records.storage.database(tenants["in-cn"])
        if db.is_sqlite:
            assert "cn-tenants" in str(db.engine.url.database)
        else:
            assert db.engine is platform.regions.database("cn").engine  # its schema there
        schema = platform.records.storage.schema(tenants["in-cn"])
        table = f'"{schema}".crm__person' if schema else "crm__person"
        async with db.read() as conn:
            rows = (await conn.execute(sa.text(f"SELECT country FROM {table}"))).all()
        assert [r.country for r in rows] == ["CN"]
        # an EU-only tenant takes its German subjects but refuses Chinese ones, naming the field
        await create("in-eu", "DE")
        with pytest.raises(Refused) as err:
            await create("in-eu", "CN")
        assert err.value.path == "country" and err.value.extra["field"] == "country"
        # data of a tenant lives in one home region: a subject routed elsewhere is refused
        await create("both", "DE")
        with pytest.raises(Refused) as err:
            await create("both", "CN")
        assert err.value.extra["region"] == "cn" and "cn (cn)" in err.value.detail
        # and the home region cannot move under published data
        with pytest.raises(Conflict):
            await platform.compliance.set_profile(tenants["both"], {"regions": ["cn", "eu"]})
    finally:
        await platform.stop()


def _admin():
    from plinth.governance.principal import PLATFORM_ADMIN, Principal

    return Principal("admin", "user", frozenset({PLATFORM_ADMIN}), None)
