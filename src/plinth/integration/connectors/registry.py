"""Connector kinds: the `ConnectorKind` protocol and the registry; also the `connector`
document kind, whose check validates a document against its connector kind (the package
lists the built-in connector kinds)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from plinth.errors import Fault
from plinth.integration.breaker import CircuitBreaker
from plinth.integration.tokens import TokenCache
from plinth.integration.webhooks import Webhooks
from plinth.jsonschema import Validator, compile_schema, faults
from plinth.metadata import kinds


class ConnectorHost(Protocol):
    """What a connector kind uses of the connector service during a call."""

    http: httpx.AsyncClient  # the pooled client behind the SSRF guard
    oauth_tokens: TokenCache
    webhooks: Webhooks

    def resolve(self, url: str) -> str: ...

    def breaker(self, key: str, config: dict[str, Any]) -> CircuitBreaker: ...


HERE = Path(__file__).parent


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((HERE / f"{name}.schema.json").read_text())


@dataclass
class CallContext:
    """What a connector kind gets for one call: where from, and how to reach secrets."""

    service: ConnectorHost
    tenant_id: str
    app: str
    name: str
    reveal: Callable[[Any], Awaitable[Any]]  # resolves {"secret": name} refs in a value
    secrets_seen: list[str] = field(default_factory=list)  # values to redact from errors
    idempotency_key: str | None = None  # the caller's key for this call, when it has one

    @property
    def key(self) -> str:
        return f"{self.tenant_id}/{self.app}/{self.name}"


class ConnectorKind(Protocol):
    name: str
    description: str
    schema: dict[str, Any]
    validator: Validator

    def operations(self, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The callable operations of a connector document (name -> description)."""
        ...

    def check(self, name: str, doc: dict[str, Any]) -> list[Fault]:
        """Semantic checks the schema cannot express (paths relative to the document)."""
        ...

    async def call(
        self, ctx: CallContext, doc: dict[str, Any], operation: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Run `operation` with validated `data`; the result is JSON-ready."""
        ...


_kinds: dict[str, ConnectorKind] = {}


def register(kind: ConnectorKind) -> ConnectorKind:
    """Add (or replace, by name) a connector kind; the `connector` document schema follows."""
    kind.validator = compile_schema(kind.schema)
    _kinds[kind.name] = kind
    _document_schema_changed()
    return kind


def unregister(name: str) -> None:
    _kinds.pop(name, None)
    _document_schema_changed()


def _document_schema_changed() -> None:
    """The `connector` document's `kind` enum is generated from the registered kinds."""
    CONNECTOR.schema["properties"]["kind"]["enum"] = list(_kinds)
    CONNECTOR.validator = compile_schema(CONNECTOR.schema)


def get(name: str) -> ConnectorKind | None:
    return _kinds.get(name)


def all_kinds() -> list[ConnectorKind]:
    return list(_kinds.values())


def check_connector(name: str, doc: dict[str, Any], definition: dict[str, Any]) -> list[Fault]:
    """Validate a connector document against the schema of its kind, then its own checks."""
    base = f"connectors.{name}"
    kind = _kinds.get(doc.get("kind", ""))
    if kind is None:
        return [
            Fault(f"{base}.kind", f"unknown connector kind {doc.get('kind')!r}", "unknown_kind")
        ]
    found = faults(kind.validator, doc, base)
    if found:
        return found
    return [
        Fault(f"{base}.{f.path}" if f.path else base, f.message, f.code)
        for f in kind.check(name, doc)
    ]


CONNECTOR = kinds.register(
    kinds.Kind(
        name="connector",
        section="connectors",
        schema=load_schema("connector"),
        id_prefix="con",
        checks=[check_connector],
    )
)
