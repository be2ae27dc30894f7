"""Attacks on the memoised decisions and the row-filter and field caches: a decision made for
one principal or record is never reused for one that differs in anything the policies read
(attributes, groups, roles, tenant, the record's attributes)."""

from __future__ import annotations

import dataclasses

import httpx

from plinth.governance.access import DENY_ALL, Resource
from plinth.server import Platform
from tests.governance.test_policy import analyst, published, record


async def test_a_memoised_decision_follows_who_asks_and_what_about(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    tid = await published(client)
    authz = platform.authorizer
    fr = analyst(tid, "FR")
    # same id, other attributes (a token issued after an administrator changed them)
    de_same_id = dataclasses.replace(fr, attrs={"country": "DE", "groups": []})
    assert authz.decide(fr, "data.read", record(tid, country="FR")).allowed
    assert not authz.decide(de_same_id, "data.read", record(tid, country="FR")).allowed
    # the record attribute the policy reads is part of the memo; one it does not read is not
    assert not authz.decide(fr, "data.read", record(tid, country="DE")).allowed
    assert authz.decide(fr, "data.read", record(tid, country="FR", amount=9)).allowed
    # another tenant's principal with the same id never reuses tenant A's decision
    other = dataclasses.replace(fr, tenant_id="someone-else")
    assert not authz.decide(other, "data.read", record(tid, country="FR")).allowed
    # groups: the health notes field opens only to the claims team
    notes = Resource(
        "field",
        "claim.health_notes",
        tid,
        {"app": "claims", "entity": "claim", "name": "health_notes"},
    )
    team = dataclasses.replace(fr, attrs={"country": "FR", "groups": ["claims"]})
    assert not authz.decide(fr, "field.read", notes).allowed
    assert authz.decide(team, "field.read", notes).allowed
    assert not authz.decide(fr, "field.read", notes).allowed
    readable, _ = authz.field_access(fr, tid, "claims", "claim")
    assert readable is not None and "health_notes" not in readable
    assert authz.field_access(team, tid, "claims", "claim") == (None, None)
    # roles: an owner with the same id is not refused by the analysts' forbid
    owner = dataclasses.replace(fr, roles=frozenset({"owner"}))
    assert authz.decide(owner, "data.read", record(tid, country="DE")).allowed


async def test_the_row_filter_cache_follows_who_asks(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    tid = await published(client)
    authz = platform.authorizer
    fr = analyst(tid, "FR")
    de_same_id = dataclasses.replace(fr, attrs={"country": "DE", "groups": []})
    a = authz.row_filter(fr, "data.read", tid, "claims", "claim")
    b = authz.row_filter(de_same_id, "data.read", tid, "claims", "claim")
    assert a != b and "FR" in str(a) and "DE" in str(b)
    other = dataclasses.replace(fr, tenant_id="someone-else")
    assert authz.row_filter(other, "data.read", tid, "claims", "claim") == DENY_ALL
