"""The demo insurer's people: claims analysts per country, two claims managers, a customer.

The claims workflow assigns its review to "an analyst of the claim's country" (role `analyst`,
attribute `country`) and its high-value approval to two `manager`s; these governance users
carry exactly those roles and attributes, so their inboxes show the right tasks. Each gets a
random password, shown once when the user is created.
"""

from __future__ import annotations

import secrets
from typing import Any

from plinth.errors import Conflict
from plinth.governance.principal import Principal

# username: (roles, attributes). Managers hold the analyst role for the inbox and task
# actions, with no country: they approve, they do not review country claims.
USERS: dict[str, tuple[list[str], dict[str, str]]] = {
    "ana": (["analyst"], {"country": "FR"}),
    "dirk": (["analyst"], {"country": "DE"}),
    "lucia": (["analyst"], {"country": "ES"}),
    "maria": (["analyst", "manager"], {}),
    "max": (["analyst", "manager"], {}),
    # A policyholder who files claims through the portal (/a/acme-insurance/claims).
    "carla": (["customer"], {"country": "DE"}),
}


async def ensure_users(platform: Any, tenant: Any, principal: Principal) -> list[str]:
    """Create the demo users missing from the tenant; one summary line per new user.

    The tenant's `demo_users` setting remembers who was made, so loading the demo again hashes
    no password (argon2 takes a good fraction of a second per user, by design)."""
    made = set(tenant.settings.get("demo_users", []))
    lines: list[str] = []
    for username, (roles, attrs) in USERS.items():
        if username in made:
            continue
        password = secrets.token_urlsafe(12)
        try:
            user = await platform.governance.identity.create_user(
                tenant.id, username, password, roles=roles, attrs=attrs
            )
        except Conflict:  # someone made this user by hand: leave it as it is
            made.add(username)
            continue
        made.add(username)
        await platform.governance.record(
            tenant.id, principal.audit_name(), "user.created", f"user:{user.id}", roles=roles
        )
        where = f", country {attrs['country']}" if attrs.get("country") else ""
        lines.append(f"user {username} ({' + '.join(roles)}{where}) created, password: {password}")
    if made != set(tenant.settings.get("demo_users", [])):
        await platform.tenants.update_settings(tenant.slug, "demo_users", sorted(made))
    return lines
