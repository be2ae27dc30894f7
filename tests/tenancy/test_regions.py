"""Residency routing across regions: two SQLite files, or two PostgreSQL databases."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from plinth.errors import ValidationFailed
from plinth.server import Platform
from plinth.settings import Settings
from plinth.tenancy import ComplianceProfile, Region, ResidencyRefused, route
from tests.conftest import ADMIN_TOKEN, _pg_admin, _pg_dsn
from tests.helpers import make_tenant

REGIONS = {"default": Region("default", "sqlite://", "eu-central"),
           "cn": Region("cn", "sqlite://", "cn"), "us": Region("us", "sqlite://", "us-east")}


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
    own = ComplianceProfile(countries=("DE",), residency={"DE": ("eu-central",)},
                            default_country="DE")
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
        yield {r: _pg_dsn(db).replace("postgresql://", "postgresql+asyncpg://", 1)
               for r, db in names.items()}
    finally:
        for db in names.values():
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


async def test_records_land_in_the_routed_region(database_url, region_urls, tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        regions={"eu": {"url": region_urls["eu"], "location": "eu-central"},
                 "cn": {"url": region_urls["cn"], "location": "cn"}},
    )
    platform = Platform(settings)
    await platform.start()
    try:
        tenant = await platform.tenants.create("globex")
        await platform.compliance.set_profile(
            tenant, {"countries": ["DE", "CN"], "regions": ["eu", "cn"]})
        tenant = await platform.tenants.get("globex")
        assert platform.regions.region_for(tenant, "DE").name == "eu"
        assert platform.regions.region_for(tenant, "CN").name == "cn"
        # What the runtime will do: write each subject's record into its region's database.
        for country in ("DE", "CN"):
            region = platform.regions.region_for(tenant, country)
            db = platform.regions.database(region.name)
            async with db.transaction() as conn:
                await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS person "
                                           "(name VARCHAR(40), country VARCHAR(2))"))
                await conn.execute(sa.text("INSERT INTO person VALUES (:n, :c)"),
                                   {"n": f"subject-{country}", "c": country})
        for name, expected in (("eu", ["DE"]), ("cn", ["CN"])):
            async with platform.regions.database(name).read() as conn:
                rows = (await conn.execute(sa.text("SELECT country FROM person"))).all()
            assert [r.country for r in rows] == expected
        # A tenant limited to the EU region cannot take a Chinese subject's record.
        await platform.compliance.set_profile(tenant, {"countries": ["DE", "CN"],
                                                       "regions": ["eu"]})
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
    settings = Settings(data_dir=tmp_path, database_url=database_url,
                        regions={"cn": {"location": "cn"}})
    with pytest.raises(ValidationFailed) as err:
        Platform(settings)
    assert err.value.faults[0].path == "regions.cn.url"


async def test_profile_over_http(client):
    await make_tenant(client, "initech")
    r = await client.put("/api/t/initech/compliance/profile",
                         json={"countries": ["DE", "de"], "jurisdictions": ["gdpr", "nope"]})
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert paths == {"compliance.countries[1]"}
    r = await client.put("/api/t/initech/compliance/profile",
                         json={"countries": ["DE"], "jurisdictions": ["gdpr", "nope"]})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == \
        "compliance.jurisdictions[1]"
    r = await client.put("/api/t/initech/compliance/profile", json={"countries": ["DE", "CN"]})
    assert r.status_code == 200
    r = await client.get("/api/t/initech/compliance/profile")
    assert r.json()["profile"]["countries"] == ["DE", "CN"]
    assert r.json()["regions"] == [{"name": "default", "location": "local"}]


async def test_a_tenant_is_created_in_a_known_region_only(client):
    r = await client.post("/api/tenants", json={"slug": "umbrella", "region": "mars"})
    assert r.status_code == 422
    assert r.json()["errors"][0] == {"path": "region", "code": "unknown_region",
                                     "message": "no region named 'mars'; known: default"}
