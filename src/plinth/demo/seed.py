"""The demo's data, made the way people make it: over the HTTP API, as the people who would.

The back office (a short-lived tenant key) registers policyholders and their policies and files
claims phoned in; the customer's account is created linked to her policyholder record and she
files her own claims; every claim runs the real `claims_process` workflow (the fraud scorer's
hook and triage in the sandbox), and the analysts and managers work their tasks as
themselves. So the demo opens with claims in five countries and several states, payouts, and
open tasks in every staff inbox. It runs once per tenant (the `demo_seeded` setting).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from starlette.types import ASGIApp

from plinth.db import utcnow
from plinth.demo.ports import Services
from plinth.demo.users import CUSTOMERS, describe, remember
from plinth.errors import Conflict
from plinth.governance.principal import Principal
from plinth.tenancy.models import Tenant

SEEDED = "demo_seeded"  # tenant setting: "started", then True once done (it never runs twice)
# Answers that mean "not now" (the sandbox's admission queue is full, a plugin call ran past its
# deadline on a loaded machine): nothing was written, so the call is tried again.
BUSY = {429, 503, 504}
ATTEMPTS = 8
APP = "claims"
BACK_OFFICE = "back-office"  # the name its key's writes are recorded under (created_by)


@dataclass(frozen=True)
class Holder:
    full_name: str
    email: str
    country: str
    city: str
    policies: dict[str, tuple[str, str]]  # number: (product, sum insured)


@dataclass(frozen=True)
class Claim:
    reference: str
    policy: str  # policy number
    amount: str
    description: str
    incident_date: str
    currency: str = "EUR"
    health_notes: str | None = None
    filed_by: str = BACK_OFFICE  # or a customer's username
    review: tuple[str, str | None] | None = None  # (analyst, decision); None leaves it open
    votes: tuple[str, ...] = field(default=())  # managers who approve, in order


HOLDERS = [
    Holder(
        "Carla Weber",
        "carla.weber@example.org",
        "DE",
        "Köln",
        {"DE-200101": ("motor", "25000.00"), "DE-200102": ("home", "180000.00")},
    ),
    Holder(
        "Jonas Becker",
        "jonas.becker@example.org",
        "DE",
        "Hamburg",
        {"DE-200201": ("home", "320000.00"), "DE-200202": ("health", "50000.00")},
    ),
    Holder(
        "Camille Laurent",
        "camille.laurent@example.org",
        "FR",
        "Lyon",
        {"FR-300101": ("home", "210000.00"), "FR-300102": ("motor", "18000.00")},
    ),
    Holder("Hugo Moreau", "hugo.moreau@example.org", "FR", "Nantes", {"FR-300201": ("travel", "")}),
    Holder(
        "Javier Ortega",
        "javier.ortega@example.org",
        "ES",
        "Valencia",
        {"ES-400101": ("motor", "22000.00"), "ES-400102": ("home", "260000.00")},
    ),
    Holder(
        "Carmen Ruiz", "carmen.ruiz@example.org", "ES", "Sevilla", {"ES-400201": ("health", "")}
    ),
    Holder("João Silva", "joao.silva@example.org", "BR", "Curitiba", {"BR-500101": ("motor", "")}),
    Holder(
        "Emily Carter", "emily.carter@example.org", "US", "Portland", {"US-600101": ("home", "")}
    ),
]

# Amounts up to 1 000 with a low fraud score are approved, paid out and closed by the workflow
# alone; the rest wait for the analyst of their country; above 10 000, for two managers too.
CLAIMS = [
    Claim(
        "CLM-DE-0001",
        "DE-200101",
        "640.00",
        "Parking dent on the rear door",
        "2026-01-12",
        filed_by="carla",
    ),
    Claim(
        "CLM-DE-0002",
        "DE-200102",
        "1250.00",
        "Bicycle stolen from the locked cellar",
        "2026-02-03",
        filed_by="carla",
        review=("dirk", "rejected"),
    ),
    Claim(
        "CLM-DE-0003",
        "DE-200102",
        "2350.00",
        "Burst pipe flooded the kitchen floor",
        "2026-03-08",
        filed_by="carla",
        review=("dirk", None),
    ),
    Claim(
        "CLM-DE-0004",
        "DE-200202",
        "3180.00",
        "Slipped on icy stairs at work and broke a wrist",
        "2026-02-20",
        health_notes="Distal radius fracture, cast for six weeks, physiotherapy afterwards",
        review=("dirk", None),
    ),
    Claim(
        "CLM-DE-0005",
        "DE-200201",
        "18450.00",
        "Storm tore off part of the roof; rain damage in the attic",
        "2026-02-27",
        review=("dirk", "approved"),
    ),
    Claim(
        "CLM-FR-0001",
        "FR-300101",
        "320.00",
        "Window broken in a hail shower",
        "2026-01-25",
    ),
    Claim(
        "CLM-FR-0002",
        "FR-300102",
        "3900.00",
        "Collision on the ring road: front bumper and headlights",
        "2026-03-02",
        review=("ana", None),
    ),
    Claim(
        "CLM-FR-0003",
        "FR-300201",
        "12480.00",
        "Hospitalised in Lisbon after a fall, flown home",
        "2026-02-14",
        health_notes="Hip fracture, surgery at Hospital de Santa Maria, medical repatriation",
        review=("ana", "approved"),
    ),
    Claim(
        "CLM-ES-0001",
        "ES-400101",
        "2750.00",
        "Hit a wild boar on the A-7 near Xàtiva",
        "2026-03-05",
        review=("lucia", None),
    ),
    Claim(
        "CLM-ES-0002",
        "ES-400201",
        "860.00",
        "Dental treatment after a fall on the stairs",
        "2026-01-30",
        health_notes="Two crowns on upper incisors",
    ),
    Claim(
        "CLM-ES-0003",
        "ES-400102",
        "23870.00",
        "Kitchen fire; smoke damage throughout the flat",
        "2026-02-09",
        review=("lucia", "approved"),
        votes=("maria",),
    ),
    Claim(
        "CLM-BR-0001",
        "BR-500101",
        "750.00",
        "Side mirror broken in a car park",
        "2026-02-11",
        currency="BRL",
    ),
    Claim(
        "CLM-US-0001",
        "US-600101",
        "980.00",
        "Water heater leak soaked the basement carpet",
        "2026-02-18",
        currency="USD",
    ),
]


class Seeding:
    """One seeding run: an in-process HTTP client and who is calling."""

    def __init__(self, platform: Services, tenant: Tenant, client: httpx.AsyncClient) -> None:
        self.platform, self.tenant, self.client = platform, tenant, client
        self.auth: dict[str, dict[str, str]] = {}  # caller → Authorization header
        self.data = f"/api/t/{tenant.slug}/apps/{APP}/data"

    async def call(self, who: str, method: str, url: str, body: Any = None) -> Any:
        for attempt in range(ATTEMPTS):
            r = await self.client.request(method, url, json=body, headers=self.auth[who])
            if r.status_code not in BUSY or attempt == ATTEMPTS - 1:
                break
            await asyncio.sleep(min(float(r.headers.get("retry-after") or 1), 5.0))
        if r.status_code >= 400:
            # Seeding runs on an empty tenant with fixed data: a refusal is a bug in the demo's
            # documents (policies, workflow), so say which call failed and why.
            raise Conflict(
                f"Seeding the demo failed: {method} {url} as {who} answered "
                f"{r.status_code}: {r.text[:500]}",
                path="demo.seed",
            )
        return r.json() if r.content else None

    async def sign_in(self, username: str) -> None:
        """An access token for a demo person, as their own sign-in would give."""
        user = await self.platform.governance.identity.find_user(self.tenant.id, username)
        if user is None:
            raise Conflict(f"The demo user {username!r} is missing", path="demo.seed")
        token = self.platform.governance.identity.access_token(user)
        self.auth[username] = {"Authorization": f"Bearer {token}"}

    async def settle(self) -> None:
        """Let the workflows run until they wait for people (the embedded worker may take a
        job first: its effects are awaited by the task look-ups below)."""
        await self.platform.workflows.engine.drain()

    async def task(self, who: str, reference: str, kind: str) -> dict[str, Any]:
        """`who`'s open task of `kind` on the claim `reference`."""
        for _ in range(50):
            tasks = await self.call(who, "GET", f"/api/t/{self.tenant.slug}/tasks?app={APP}")
            for task in tasks:
                if task["business_key"] == reference and task["kind"] == kind:
                    return dict(task)
            await self.settle()
        raise Conflict(f"No {kind} on {reference} reached {who}'s inbox", path="demo.seed")


async def seed_state(platform: Services, tenant_slug: str) -> str:
    """ "done", "started" (a seeding run that did not finish) or "none"."""
    tenant = await platform.tenants.find(tenant_slug)
    value = tenant.settings.get(SEEDED) if tenant is not None else None
    return "done" if value is True else "started" if value == "started" else "none"


async def seed_demo(
    platform: Services, tenant_slug: str, principal: Principal, http: ASGIApp
) -> list[str]:
    """Seed the demo tenant once: policyholders, policies, claims worked by its people."""
    tenant = await platform.tenants.get(tenant_slug)
    if tenant.settings.get(SEEDED):
        return []
    # Marked before the first record: a run that dies half-way is told apart from one that
    # never ran (`seed_state`), and is not run again over its own records.
    await platform.tenants.update_settings(tenant_slug, SEEDED, "started")
    transport = httpx.ASGITransport(app=http)
    # The operator loading the demo hands out the key: ledgered, with the key.
    audit = platform.governance.audit.by(tenant.id, principal.audit_name())
    key = await platform.tokens.issue(
        BACK_OFFICE,
        "owner",
        tenant_id=tenant.id,
        expires_at=utcnow() + timedelta(minutes=15),
        audit=audit,
    )
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://demo.seed", timeout=60
        ) as client:
            run = Seeding(platform, tenant, client)
            run.auth[BACK_OFFICE] = {"Authorization": f"Bearer {key.token}"}
            lines = await _seed(run)
    finally:
        await platform.tokens.revoke(key.id, tenant_id=tenant.id, audit=audit)
    await platform.tenants.update_settings(tenant_slug, SEEDED, True)
    return lines


async def _seed(run: Seeding) -> list[str]:
    slug = run.tenant.slug
    holders = await run.call(
        BACK_OFFICE,
        "POST",
        f"{run.data}/policyholder",
        [
            {
                "full_name": h.full_name,
                "email": h.email,
                "country": h.country,
                "address": {"city": h.city},
            }
            for h in HOLDERS
        ],
    )
    holder_ids = {h.email: rec["id"] for h, rec in zip(HOLDERS, holders, strict=True)}
    covers = [
        {
            "number": number,
            "holder": holder_ids[h.email],
            "product": product,
            "starts_on": "2025-07-01",
            **({"sum_insured": total} if total else {}),
        }
        for h in HOLDERS
        for number, (product, total) in h.policies.items()
    ]
    policies = await run.call(BACK_OFFICE, "POST", f"{run.data}/policy", covers)
    policy_ids = {p["number"]: p["id"] for p in policies}
    lines = [f"seed: {len(holders)} policyholders, {len(policies)} policies"]

    made: set[str] = set()
    for username, (person, email) in CUSTOMERS.items():
        password = secrets.token_urlsafe(12)
        body = {
            "username": username,
            "password": password,
            "roles": person.roles,
            "groups": person.groups,
            "attrs": {**person.attrs, "subject": holder_ids[email]},
        }
        r = await run.client.post(f"/api/t/{slug}/users", json=body, headers=run.auth[BACK_OFFICE])
        if r.status_code == 409:  # made by hand before the demo loaded: leave it as it is
            continue
        if r.status_code != 201:
            raise Conflict(f"Creating the demo customer {username!r}: {r.text}", path="demo.seed")
        made.add(username)
        lines.append(describe(username, person, password))
    await remember(run.platform, slug, made)

    people = {c.filed_by for c in CLAIMS} | {c.review[0] for c in CLAIMS if c.review}
    people |= {v for c in CLAIMS for v in c.votes}
    for username in sorted(people - {BACK_OFFICE}):
        await run.sign_in(username)
    for filer, claims in _by_filer(CLAIMS):
        await run.call(
            filer,
            "POST",
            f"{run.data}/claim",
            [
                {
                    "reference": c.reference,
                    "policy": policy_ids[c.policy],
                    "country": c.policy[:2],
                    "incident_date": c.incident_date,
                    "description": c.description,
                    "amount": c.amount,
                    "currency": c.currency,
                    **({"health_notes": c.health_notes} if c.health_notes else {}),
                }
                for c in claims
            ],
        )
    await run.settle()
    for c in CLAIMS:
        if c.review and c.review[1]:
            analyst, decision = c.review
            task = await run.task(analyst, c.reference, "user_task")
            await run.call(
                analyst, "POST", f"/api/t/{slug}/tasks/{task['id']}/complete", {"status": decision}
            )
    await run.settle()
    for c in CLAIMS:
        for manager in c.votes:
            task = await run.task(manager, c.reference, "approval")
            await run.call(
                manager,
                "POST",
                f"/api/t/{slug}/tasks/{task['id']}/decide",
                {"decision": "approved", "comment": "Documents and estimate check out"},
            )
    await run.settle()
    # Every claim waiting for a person is in that person's inbox before the demo opens.
    for c in CLAIMS:
        if c.review and c.review[1] is None:
            await run.task(c.review[0], c.reference, "user_task")
    counts: dict[str, int] = {}
    for claim in (await run.call(BACK_OFFICE, "GET", f"{run.data}/claim?limit=100"))["items"]:
        counts[claim["status"]] = counts.get(claim["status"], 0) + 1
    states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines.append(f"seed: {len(CLAIMS)} claims in {len(_countries())} countries ({states})")
    return lines


def _by_filer(claims: Iterable[Claim]) -> list[tuple[str, list[Claim]]]:
    out: dict[str, list[Claim]] = {}
    for c in claims:
        out.setdefault(c.filed_by, []).append(c)
    return list(out.items())


def _countries() -> set[str]:
    return {c.policy[:2] for c in CLAIMS}
