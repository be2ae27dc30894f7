"""The `webhook_out` connector kind: events delivered to a subscriber URL, signed, retried
with backoff, logged. The delivery engine is `integration.webhooks.Webhooks`; calling the
connector's `send` operation delivers a payload of the caller's choosing."""

from __future__ import annotations

from typing import Any

from plinth.errors import Fault, NotFound, ValidationFailed
from plinth.integration.connectors.registry import CallContext, load_schema, register
from plinth.jsonschema import Validator


class WebhookOutKind:
    name = "webhook_out"
    description = "Signed event deliveries (record.*, workflow.*) to a subscriber URL"
    schema = load_schema("webhook_out")
    validator: Validator = None

    def operations(self, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {"send": {"summary": "Deliver {topic, data} to the subscriber now"}}

    def check(self, name: str, doc: dict[str, Any]) -> list[Fault]:
        return []

    async def call(
        self, ctx: CallContext, doc: dict[str, Any], operation: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        if operation != "send":
            raise NotFound(
                f"Connector {ctx.name!r} has no operation {operation!r}", path="operation"
            )
        topic = data.get("topic")
        if not isinstance(topic, str) or not topic:
            raise ValidationFailed.of(
                [Fault("input.topic", "a topic is required")], "connector input"
            )
        delivery = await ctx.service.webhooks.enqueue(
            ctx.tenant_id, ctx.app, ctx.name, doc, topic, data.get("data") or {}
        )
        return {"delivery": delivery}


KIND = register(WebhookOutKind())
