"""The authorization seam: row filters and field access from the authorizer, when offered."""

from __future__ import annotations

from typing import Any

import httpx

from plinth.governance.access import Decision, RoleAuthorizer
from plinth.governance.principal import Principal
from plinth.server import Platform
from plinth.tenancy.models import Tenant
from tests.helpers import CLAIMS, make_app, make_tenant, publish

BASE = "/api/t/acme/apps/claims/data/policyholder"


class CountryAuthorizer(RoleAuthorizer):
    """Sees only German policyholders and never their e-mail."""

    def __init__(self) -> None:
        self.actions: list[str] = []

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: Any,
        context: dict[str, Any] | None = None,
    ) -> Decision:
        if resource.kind == "record":
            self.actions.append(action)
        return super().decide(principal, action, resource, context)

    def row_filter(
        self, principal: Principal, action: str, tenant: Tenant, app: str, entity: str
    ) -> dict[str, Any] | None:
        self.actions.append(f"row_filter:{action}")
        return {"field": "country", "op": "eq", "value": "DE"}

    def field_access(
        self, principal: Principal, tenant: Tenant, app: str, entity: str
    ) -> tuple[set[str] | None, set[str] | None]:
        return {"full_name", "country"}, {"full_name", "country"}


async def test_row_filter_and_field_access(client: httpx.AsyncClient, platform: Platform) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    assert (await publish(client, "acme", "claims", CLAIMS)).status_code == 201
    await client.post(
        BASE,
        json=[
            {"full_name": "Ada", "country": "DE", "email": "a@x.io"},
            {"full_name": "Bo", "country": "FR"},
        ],
    )
    auth = CountryAuthorizer()
    platform.authorizer = auth
    items = (await client.get(BASE)).json()["items"]
    assert [i["full_name"] for i in items] == ["Ada"] and "email" not in items[0]
    r = await client.post(BASE, json={"full_name": "Cy", "country": "DE", "email": "c@x.io"})
    assert r.status_code == 403 and r.json()["path"] == "email"
    assert (await client.get(BASE, params={"fields": "email"})).status_code == 403
    # lists are decided by the row filter; single writes by a decision on the record
    assert "row_filter:data.read" in auth.actions and "data.create" in auth.actions
