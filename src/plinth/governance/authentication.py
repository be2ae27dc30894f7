"""Every door's authentication: a bearer token names a login (JWT) or an API token."""

from __future__ import annotations

from plinth.errors import Unauthenticated
from plinth.governance.identity import IdentityService
from plinth.governance.principal import Principal
from plinth.governance.tokens import TokenService


class Authentication:
    """The caller a bearer token names (HTTP routes, the designer's WebSocket, the portal)."""

    def __init__(self, identity: IdentityService, tokens: TokenService) -> None:
        self.identity = identity
        self.tokens = tokens

    async def authenticate(self, token: str) -> Principal:
        if token.count(".") == 2:  # a JWT access token from login; API keys have no dots
            return self.identity.authenticate(token)
        return await self.tokens.authenticate(token)

    def known(self, token: str) -> Principal | None:
        """The caller `token` names, if that is known without a database read (a valid
        login token, or an API token whose row is trusted now), else None. A hint, never an
        authentication (see `TokenService.known`)."""
        if token.count(".") == 2:
            try:
                return self.identity.authenticate(token)
            except Unauthenticated:
                return None
        return self.tokens.known(token)
