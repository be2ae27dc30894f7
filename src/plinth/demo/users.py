"""The demo insurer's people: claims analysts per country, two claims managers, a designer and
an administrator who work in the IDE, a customer.

The claims workflow assigns its review to "an analyst of the claim's country" (role `analyst`,
attribute `country`) and its high-value approval to two `manager`s; these governance users
carry exactly those roles and attributes, so their inboxes show the right tasks. `dirk` is in
the claims team (`Group::"claims"`), which alone reads medical notes. The customer is created
by the seed (`plinth.demo.seed`) once her policyholder record exists: her account names it
(attribute `subject`), which is how the demo's policies show her only her own policies. Each
person gets a random password, shown once when the user is created.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from plinth.errors import Conflict
from plinth.governance.principal import Principal


@dataclass(frozen=True)
class Person:
    roles: list[str]
    attrs: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)


# Managers hold the analyst role for the inbox and task actions, with no country: they approve
# high-value claims and take over late reviews, and read every claim (the demo's policies).
STAFF: dict[str, Person] = {
    "ana": Person(["analyst"], {"country": "FR"}),
    "dirk": Person(["analyst"], {"country": "DE"}, groups=["claims"]),
    "lucia": Person(["analyst"], {"country": "ES"}),
    "maria": Person(["analyst", "manager"]),
    "max": Person(["analyst", "manager"]),
    # The people behind the app: a business analyst who designs and publishes it in the IDE
    # (signing in with her password, like everyone here), and the tenant's administrator, who
    # manages users, groups, API tokens and reads the audit ledger.
    "bea": Person(["designer"], {"country": "DE"}),
    "olga": Person(["owner"], {"country": "DE"}),
}
# A policyholder who files claims through the portal (/a/acme-insurance/claims); the seed
# links her account to her policyholder record (by its e-mail address here).
CUSTOMERS: dict[str, tuple[Person, str]] = {
    "carla": (Person(["customer"], {"country": "DE"}), "carla.weber@example.org"),
}


def describe(username: str, person: Person, password: str) -> str:
    """The summary line of a new demo user (its password is shown only here)."""
    where = f", country {person.attrs['country']}" if person.attrs.get("country") else ""
    team = "".join(f", group {g}" for g in person.groups)
    return (
        f"user {username} ({' + '.join(person.roles)}{where}{team}) created, password: {password}"
    )


async def ensure_users(platform: Any, tenant: Any, principal: Principal) -> list[str]:
    """Create the demo's staff missing from the tenant; one summary line per new user.

    The tenant's `demo_users` setting remembers who was made, so loading the demo again hashes
    no password (argon2 takes a good fraction of a second per user, by design)."""
    made = set(tenant.settings.get("demo_users", []))
    lines: list[str] = []
    audit = platform.governance.audit.by(tenant.id, principal.audit_name())
    for username, person in STAFF.items():
        if username in made:
            continue
        password = secrets.token_urlsafe(12)
        try:
            await platform.governance.identity.create_user(
                tenant.id,
                username,
                password,
                roles=person.roles,
                groups=person.groups,
                attrs=person.attrs,
                audit=audit,
            )
        except Conflict:  # someone made this user by hand: leave it as it is
            made.add(username)
            continue
        made.add(username)
        lines.append(describe(username, person, password))
    await remember(platform, tenant.slug, made)
    return lines


async def remember(platform: Any, tenant_slug: str, usernames: set[str]) -> None:
    """Add `usernames` to the tenant's `demo_users` setting (read afresh: others add too)."""
    tenant = await platform.tenants.get(tenant_slug)
    known = set(tenant.settings.get("demo_users", []))
    if not usernames <= known:
        await platform.tenants.update_settings(tenant_slug, "demo_users", sorted(known | usernames))
