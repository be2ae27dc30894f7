"""`platform.connectors`: calling connectors (the workflows and extensions layers call
`call`), connector documents of published apps, OpenAPI import and the marketplace view."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.cluster import Cluster
from plinth.db import Database
from plinth.errors import BadRequest, NotFound, PlinthError
from plinth.events import Event, EventBus
from plinth.governance.access import Authorizer, Resource, authorize
from plinth.governance.principal import Principal
from plinth.integration import connectors
from plinth.integration.breaker import Breaker, CircuitBreaker, SharedBreaker
from plinth.integration.connectors import CallContext
from plinth.integration.egress import EgressPolicy, GuardedTransport, read_capped
from plinth.integration.models import ConnectorFailed, ConnectorTimeout, EgressRefused
from plinth.integration.openapi import import_openapi
from plinth.integration.quotas import Quotas
from plinth.integration.tokens import TokenCache
from plinth.integration.vault import Vault
from plinth.integration.webhooks import Receiver, Webhooks
from plinth.metadata import store as metadata_store
from plinth.metadata.service import MetadataService
from plinth.settings import Settings
from plinth.tenancy.models import Tenant
from plinth.tenancy.service import TenantService

REDACTED = "[redacted]"
MAX_OPENAPI_BYTES = 5 * 1024 * 1024
PLUGIN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})


class ConnectorService:
    """Connector calls with policy, secrets, breakers and audit events."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        events: EventBus,
        vault: Vault,
        quotas: Quotas,
        authorizer: Authorizer,
        tenants: TenantService,
        metadata: MetadataService,
        cluster: Cluster | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.vault = vault
        self.quotas = quotas
        self.authorizer = authorizer
        self.tenants = tenants
        self.metadata = metadata
        # Every outbound call of the layer goes through this one pooled client, whose
        # transport is the SSRF guard; each call passes its own timeout.
        self.egress = EgressPolicy(settings.egress_allow)
        self.http = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, transport=GuardedTransport(self.egress)
        )
        # Breaker state and OAuth2 tokens: per process when embedded, shared through Redis
        # when scaled out (so every node sees an open circuit and reuses one token).
        self.redis: Any = cluster.redis if cluster is not None else None
        self.breakers: dict[str, Breaker] = {}
        self.oauth_tokens = TokenCache(self.redis, lambda: self.vault.master)
        self._documents: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._subscribers: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        self.webhooks = Webhooks(self)
        self.events.subscribe("app.*", self._forget, cluster=True)

    def resolve(self, url: str) -> str:
        """A connector URL made absolute: one that starts with `/` names this platform's own
        server, resolved at call time (so a server restarted on another port still reaches
        itself). The SSRF guard then checks the address like any other."""
        return self.settings.self_url + url if url.startswith("/") else url

    def on_webhook(self, receiver: Receiver) -> None:
        """Act on each verified `webhook_in` delivery inside the transaction recording it."""
        self.webhooks.receivers.append(receiver)

    async def call(
        self,
        tenant: Tenant,
        app_slug: str,
        connector: str,
        operation: str,
        input: dict[str, Any],
        principal: Principal,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Call `operation` of a connector of a published app, as `principal`.

        `idempotency_key` (a workflow step's) goes to the service with the call (`http`: the
        Idempotency-Key header), so a retried call can be recognised there."""
        authorize(
            self.authorizer,
            principal,
            "connector.call",
            Resource("connector", connector, tenant.id, {"app": app_slug}),
        )
        doc = await self.document(tenant, app_slug, connector)
        kind = connectors.get(doc["kind"])
        assert kind is not None
        if not isinstance(input, dict):
            raise BadRequest("A connector's input is an object", path="input")
        await self.quotas.consume(tenant.id, "connector_calls")
        ctx = CallContext(
            self,
            tenant.id,
            app_slug,
            connector,
            reveal=None,  # type: ignore[arg-type]
            idempotency_key=idempotency_key,
        )
        ctx.reveal = lambda value: self._reveal(ctx, value)
        started = time.perf_counter()
        error: str | None = None
        try:
            return await kind.call(ctx, doc, operation, input)
        except PlinthError as exc:
            error = exc.code
            _redact(exc, ctx.secrets_seen)
            raise
        except Exception as exc:
            error = ConnectorFailed.code
            raise ConnectorFailed(
                _scrub(f"Connector {connector!r} failed: {type(exc).__name__}", ctx.secrets_seen)
            ) from None
        finally:
            # What was called, by whom, how it went: never inputs, outputs or secrets.
            await self.events.publish(
                Event(
                    "connector.called",
                    tenant.id,
                    {
                        "app": app_slug,
                        "connector": connector,
                        "kind": doc["kind"],
                        "operation": operation,
                        "principal": principal.audit_name(),
                        "ok": error is None,
                        "error": error,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            )

    async def _reveal(self, ctx: CallContext, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"secret"}:
            plain = await self.vault.reveal(
                ctx.tenant_id, value["secret"], f"connector:{ctx.app}/{ctx.name}"
            )
            ctx.secrets_seen.append(plain)
            return plain
        if isinstance(value, dict):
            return {k: await self._reveal(ctx, v) for k, v in value.items()}
        if isinstance(value, list):
            return [await self._reveal(ctx, v) for v in value]
        return value

    async def plugin_fetch(
        self,
        tenant: Tenant,
        plugin: str,
        principal: Principal,
        method: str,
        url: str,
        body: bytes | None,
        *,
        hosts: Collection[str],
        seconds: float,
        max_bytes: int,
    ) -> dict[str, Any]:
        """A plugin's `http` call: to a host its grant names, through the SSRF guard, within
        `seconds` and `max_bytes`, audited as `connector.egress` (never the query or body)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EgressRefused("only http(s) URLs with a host", path="url")
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        if host not in hosts and parts.hostname not in hosts:
            raise EgressRefused(f"HTTP to {host} is not granted", path="url")
        method = method.upper()
        if method not in PLUGIN_METHODS:
            raise EgressRefused(f"HTTP method {method!r} is not allowed", path="method")
        await self.quotas.consume(tenant.id, "plugin_http")
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(seconds):
                # No redirects: a granted host must not bounce the call to an ungranted one.
                async with self.http.stream(method, url, content=body, timeout=seconds) as response:
                    status = response.status_code
                    body_bytes = await read_capped(
                        response,
                        max_bytes,
                        f"HTTP to {host}: response larger than {max_bytes} bytes",
                    )
                    text = body_bytes.decode(response.encoding or "utf-8", "replace")
        except (TimeoutError, httpx.TimeoutException):
            error = ConnectorTimeout.code
            raise ConnectorTimeout(
                f"HTTP to {host} did not answer within {seconds:.3g} s", path="url"
            ) from None
        except httpx.HTTPError as exc:
            error = ConnectorFailed.code
            raise ConnectorFailed(
                f"HTTP to {host} failed: {type(exc).__name__}", path="url"
            ) from None
        except PlinthError as exc:
            error = exc.code
            raise
        finally:
            await self.events.publish(
                Event(
                    "connector.egress",
                    tenant.id,
                    {
                        "source": f"plugin:{plugin}",
                        "method": method,
                        "host": host,
                        "path": parts.path or "/",
                        "status": status,
                        "ok": error is None,
                        "error": error,
                        "principal": principal.audit_name(),
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            )
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return {"status": status, "body": text, "json": parsed}

    def breaker(self, key: str, config: dict[str, Any]) -> CircuitBreaker:
        """The circuit breaker of one connector (in Redis when scaled out)."""
        failures = int(config.get("failures", 5))
        reset = float(config.get("reset_seconds", 30))
        if self.redis is not None:
            return SharedBreaker(self.redis, key, failures, reset)
        found = self.breakers.get(key)
        if found is None or (found.failures_to_open, found.reset_seconds) != (failures, reset):
            found = self.breakers[key] = Breaker(failures, reset)
        return found

    # -- documents ------------------------------------------------------------------------------

    async def connectors_of(self, tenant: Tenant, app_slug: str) -> dict[str, dict[str, Any]]:
        """The connector documents of an app's active version (cached until it changes)."""
        key = (tenant.id, app_slug)
        found = self._documents.get(key)
        if found is None:
            version = await self.metadata.active_version(tenant, app_slug)
            found = dict((version.definition if version else {}).get("connectors", {}))
            self._documents[key] = found
        return found

    async def document(
        self, tenant: Tenant, app_slug: str, name: str, kind: str | None = None
    ) -> dict[str, Any]:
        """One connector document of the app's active version, or NotFound."""
        doc = (await self.connectors_of(tenant, app_slug)).get(name)
        if doc is None or (kind is not None and doc.get("kind") != kind):
            what = f"{kind} connector" if kind else "connector"
            raise NotFound(
                f"App {app_slug!r} has no published {what} named {name!r}", path="connector"
            )
        return doc

    async def subscribers(
        self, tenant_id: str, conn: AsyncConnection | None = None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """(app, name, doc) of every webhook_out connector the tenant has published.

        `conn`: a transaction of the platform database (an effect's) to read them in when not
        cached, instead of through another pooled connection. Such a transaction may hold the
        tenant's ledger lock (PostgreSQL), for which the tenant's other audited changes wait
        holding their connections: with the pool full of them, a second connection never
        came and the node stalled until its timeouts failed every request."""
        found = self._subscribers.get(tenant_id)
        if found is None:
            found = []
            if conn is not None:
                for app in await metadata_store.apps_of(conn, tenant_id):
                    if app.active_version is None:
                        continue
                    version = await metadata_store.version(conn, app.id, app.active_version)
                    docs = (version.definition if version else {}).get("connectors", {})
                    found += [(app.slug, n, d) for n, d in docs.items() if _outgoing(d)]
            else:
                tenants = await self.tenants.list({tenant_id})
                if tenants:
                    for app in await self.metadata.list_apps(tenants[0]):
                        if app.active_version is None:
                            continue
                        docs = await self.connectors_of(tenants[0], app.slug)
                        found += [(app.slug, n, d) for n, d in docs.items() if _outgoing(d)]
            self._subscribers[tenant_id] = found
        return found

    async def _forget(self, event: Event) -> None:
        # A publish, rollback or delete changes what an app's connectors are.
        if event.tenant_id is None:
            return
        self._subscribers.pop(event.tenant_id, None)
        app = event.data.get("app")
        if app:
            self._documents.pop((event.tenant_id, app), None)
            for key in [k for k in self.breakers if k.startswith(f"{event.tenant_id}/{app}/")]:
                del self.breakers[key]

    # -- OpenAPI import -------------------------------------------------------------------------

    async def import_openapi(
        self,
        tenant: Tenant,
        app_slug: str,
        name: str,
        document: dict[str, Any] | None,
        url: str | None,
        base_url: str | None,
        principal: Principal,
    ) -> dict[str, Any]:
        """Turn an OpenAPI document's operations into the draft's `http` connector `name`."""
        if document is None:
            if not url:
                raise BadRequest("Give the OpenAPI document or its url", path="document")
            document = await self._fetch_json(url)
        server_url, operations = import_openapi(document)
        draft = await self.metadata.get_draft(tenant, app_slug)
        definition = dict(draft.definition)
        section = dict(definition.get("connectors", {}))
        doc = dict(section.get(name, {"kind": "http"}))
        if doc.get("kind") != "http":
            raise BadRequest(
                f"Connector {name!r} is a {doc.get('kind')} connector, not http",
                path=f"connectors.{name}.kind",
            )
        doc["base_url"] = base_url or doc.get("base_url") or server_url
        if not doc["base_url"]:
            raise BadRequest("The document names no server: give base_url", path="base_url")
        doc["operations"] = operations
        section[name] = doc
        definition["connectors"] = section
        await self.metadata.put_draft(
            tenant, app_slug, definition, by=principal.audit_name(), if_revision=draft.revision
        )
        return {"connector": name, "base_url": doc["base_url"], "operations": sorted(operations)}

    async def _fetch_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, timeout=10)
        except httpx.HTTPError as exc:
            raise BadRequest(f"Could not fetch {url}: {type(exc).__name__}", path="url") from exc
        if response.status_code != 200 or len(response.content) > MAX_OPENAPI_BYTES:
            raise BadRequest(f"Fetching {url} answered {response.status_code}", path="url")
        try:
            if url.endswith((".yaml", ".yml")):
                import yaml

                return dict(yaml.safe_load(response.text))
            return dict(response.json())
        except Exception as exc:
            raise BadRequest(f"{url} is not a JSON or YAML document", path="url") from exc

    # -- marketplace -----------------------------------------------------------------------------

    def kinds(self) -> list[dict[str, Any]]:
        """The connector kinds this platform offers, with their document schemas."""
        return [
            {"name": k.name, "description": k.description, "schema": k.schema}
            for k in connectors.all_kinds()
        ]

    async def installed(self, tenant: Tenant) -> list[dict[str, Any]]:
        """The connectors the tenant's published apps use."""
        found = []
        for app in await self.metadata.list_apps(tenant):
            if app.active_version is None:
                continue
            for name, doc in (await self.connectors_of(tenant, app.slug)).items():
                kind = connectors.get(doc.get("kind", ""))
                found.append(
                    {
                        "app": app.slug,
                        "connector": name,
                        "kind": doc.get("kind"),
                        "operations": sorted(kind.operations(doc)) if kind else [],
                    }
                )
        return found

    async def start_worker(self) -> None:
        """Attempt queued webhook deliveries in this process (the embedded worker)."""
        await self.webhooks.start_worker()

    async def close(self) -> None:
        await self.webhooks.stop()
        await self.http.aclose()  # (the Redis connection is the cluster's)
        await self.quotas.close()


def _scrub(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, REDACTED)
    return text


def _redact(error: PlinthError, secrets: list[str]) -> None:
    """Take every secret value used in a call out of the error before anyone renders it."""
    if not secrets:
        return
    error.detail = _scrub(error.detail, secrets)
    error.args = (error.detail,)
    error.faults = [type(f)(f.path, _scrub(f.message, secrets), f.code) for f in error.faults]
    error.extra = {
        k: _scrub(v, secrets) if isinstance(v, str) else v for k, v in error.extra.items()
    }
    error.__cause__ = None
    error.__context__ = None


def _outgoing(doc: dict[str, Any]) -> bool:
    return doc.get("kind") == "webhook_out"
