"""Password sign-in as the API (`/api/auth/{tenant}/login`) and the portal
(`/a/{tenant}/-/session/login`) both do it: throttled, checked, audited.

Every attempt is counted before the password is checked (`Quotas.login_attempt`: per client
address, and per tenant + username), so a guesser is refused with 429 + Retry-After whatever
it sends; a correct password clears the username's count. The first refusal of a lockout is
audited (`auth.login`, outcome `throttled`); a client hammering on during it is refused from
memory without an audit write each time.
"""

from __future__ import annotations

from typing import Any

from plinth.errors import Unauthenticated
from plinth.governance.identity import Session
from plinth.integration.quotas import LoginThrottled
from plinth.tenancy.models import Tenant


async def password_login(
    platform: Any, tenant_slug: str, username: str, password: str, client: str | None, **audit: Any
) -> tuple[Tenant, Session]:
    """The tenant and a fresh session for a correct password, or Unauthenticated / 429."""
    found = await platform.tenants.find(tenant_slug)
    gov = platform.governance
    try:
        await platform.quotas.login_attempt(found.id if found else None, username, client)
    except LoginThrottled as exc:
        if found is not None and not exc.repeat:
            await gov.record(
                found.id,
                username,
                "auth.login",
                outcome="throttled",
                scope=exc.extra.get("scope"),
                client=client,
                **audit,
            )
        raise
    if found is None:
        raise Unauthenticated("Wrong username or password")
    try:
        session = await gov.identity.login(found.id, username, password)
    except Unauthenticated:
        await gov.record(found.id, username, "auth.login", outcome="failed", **audit)
        raise
    await platform.quotas.login_succeeded(found.id, username)
    await gov.record(found.id, username, "auth.login", **audit)
    return found, session
