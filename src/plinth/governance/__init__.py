"""Governance: identity (principals, tokens), policy decisions and the audit ledger."""

from plinth.governance.principal import Principal
from plinth.governance.tokens import TokenService

__all__ = ["Principal", "TokenService"]
