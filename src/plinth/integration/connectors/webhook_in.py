"""The `webhook_in` connector kind: an endpoint per app that verifies signatures and
publishes `webhook.received` (workflows start from it). Receiving is done by
`Webhooks.receive`; the connector has no outbound operations."""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault, NotFound
from plinth.integration.connectors.registry import CallContext, load_schema, register
from plinth.jsonschema import Validator


class WebhookInKind:
    name = "webhook_in"
    description = "A signed endpoint of the app that starts workflows (webhook.received)"
    schema = load_schema("webhook_in")
    validator: Validator = None

    def operations(self, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {}

    def check(self, name: str, doc: dict[str, Any]) -> list[Fault]:
        return []

    async def call(
        self, ctx: CallContext, doc: dict[str, Any], operation: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        raise NotFound(
            f"Connector {ctx.name!r} receives webhooks; it has no operations", path="operation"
        )


KIND = register(WebhookInKind())
