"""Policy sets load per tenant on first use, not at start, and stay within their bound."""

from __future__ import annotations

import sqlalchemy as sa

from plinth.governance.access import Resource
from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.server import Platform
from plinth.settings import Settings
from tests.governance.apps import CLAIMS_APP

OPERATOR = Principal("test:operator", "cli", frozenset({PLATFORM_ADMIN}), name="test:operator")


def _de_claim(tenant_id: str) -> Resource:
    return Resource(
        "record",
        "claim",
        tenant_id,
        attrs={"app": "claims", "entity": "claim", "record": {"id": "1", "country": "DE"}},
    )


async def test_a_restarted_node_loads_a_tenants_policies_when_it_first_resolves_it(
    settings: Settings,
) -> None:
    first = Platform(settings)
    await first.start()
    ids = []
    try:
        for slug in ("acme", "globex", "initech"):
            tenant = await first.tenants.create(slug)
            await first.metadata.create_app(tenant, "claims")
            await first.metadata.put_draft(tenant, "claims", CLAIMS_APP)
            await first.metadata.publish(tenant, "claims", OPERATOR)
            ids.append(tenant.id)
    finally:
        await first.stop()

    node = Platform(settings.model_copy(update={"app_cache": 2}))
    await node.start()
    try:
        authorizer = node.governance.authorizer
        assert authorizer.stats()["apps"] == 0  # nothing per tenant at start
        ana = Principal("user:ana", "user", frozenset({"analyst"}), ids[0], attrs={"country": "FR"})
        # Not loaded yet: fails closed rather than deciding on the defaults alone.
        assert not authorizer.decide(ana, "data.read", _de_claim(ids[0])).allowed

        await node.tenants.get("acme")  # resolving a tenant loads its policy sets
        decision = authorizer.decide(ana, "data.read", _de_claim(ids[0]))
        assert not decision.allowed and decision.policies == ("analysts_own_country",)
        dirk = Principal(
            "user:dirk", "user", frozenset({"analyst"}), ids[0], attrs={"country": "DE"}
        )
        assert authorizer.decide(dirk, "data.read", _de_claim(ids[0])).allowed

        await node.tenants.get("globex")
        await node.tenants.get("initech")  # beyond the bound: acme's set is dropped
        assert authorizer.stats()["apps"] == 2
        assert not authorizer.loaded(ids[0])
        await node.tenants.get("acme")  # and loaded again when acme comes back
        assert authorizer.decide(dirk, "data.read", _de_claim(ids[0])).allowed
        assert not authorizer.decide(ana, "data.read", _de_claim(ids[0])).allowed
    finally:
        await node.stop()


async def test_a_cold_tenants_first_request_reads_its_active_versions_once(
    settings: Settings,
) -> None:
    """The policy load reads the active versions; the app's first compile uses that read
    instead of reading the platform database again."""
    first = Platform(settings)
    await first.start()
    try:
        tenant = await first.tenants.create("acme")
        await first.metadata.create_app(tenant, "claims")
        await first.metadata.put_draft(tenant, "claims", CLAIMS_APP)
        await first.metadata.publish(tenant, "claims", OPERATOR)
    finally:
        await first.stop()

    node = Platform(settings)
    await node.start()
    reads: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "versions" in statement:
            reads.append(statement)

    sa.event.listen(node.db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        tenant = await node.tenants.get("acme")  # cold: its policy sets load
        assert (await node.records.query(tenant, "claims", "claim", OPERATOR))["items"] == []
        assert len(reads) == 1, reads  # one read for the policies and the app's version
        await node.tenants.get("acme")
        await node.records.query(tenant, "claims", "claim", OPERATOR)
        assert len(reads) == 1  # warm: none
    finally:
        sa.event.remove(node.db.engine.sync_engine, "before_cursor_execute", seen)
        await node.stop()
