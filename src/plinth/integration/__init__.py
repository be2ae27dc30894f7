"""The integration mesh: the gateway, connectors (HTTP/OpenAPI, webhooks, SQL), the secrets
vault, rate limits and quotas."""

from plinth.integration import connectors as _connectors  # noqa: F401  (registers the kind)
from plinth.integration.gateway import Gateway
from plinth.integration.quotas import Quotas
from plinth.integration.service import ConnectorService
from plinth.integration.settings import GatewaySettings
from plinth.integration.vault import Vault

__all__ = ["ConnectorService", "Gateway", "GatewaySettings", "Quotas", "Vault"]
