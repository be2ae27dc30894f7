"""The composition root: one object holding every layer's services for one process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from plinth.cluster import Cluster, LogRelay, RedisRelay
from plinth.compiler.cache import ArtifactCache
from plinth.db import Database
from plinth.designer.service import DesignerService
from plinth.events import EventBus
from plinth.extensions.copies import PluginCopies
from plinth.extensions.service import PluginService
from plinth.extensions.ui import PluginComponentsStep
from plinth.governance import copies as governance_copies
from plinth.governance.access import Authorizer
from plinth.governance.authentication import Authentication
from plinth.governance.compliance.service import ComplianceService
from plinth.governance.compliance.step import ComplianceStep
from plinth.governance.service import Governance
from plinth.governance.tokens import IssuedToken, TokenService
from plinth.integration import ConnectorService, GatewaySettings, Quotas, Vault
from plinth.integration.copies import IntegrationCopies
from plinth.metadata.service import AppFiles, MetadataService
from plinth.outbox import ANY_ROW, Outbox
from plinth.runtime import copies as runtime_copies
from plinth.runtime.publishing import CompileStep, MigrateStep
from plinth.runtime.service import RecordService
from plinth.settings import Settings
from plinth.tenancy.models import Tenant
from plinth.tenancy.regions import Regions
from plinth.tenancy.service import TenantService
from plinth.workflows.copies import WorkflowCopies
from plinth.workflows.publish import WorkflowStep
from plinth.workflows.service import WorkflowService

log = logging.getLogger("plinth")


class Platform:
    """Settings, storage and the services of each layer, wired once at start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        # The one Redis connection (scaled out), closed after everything that uses it.
        self.cluster = Cluster(settings.redis_url)
        self.on_stop(self.cluster.close)
        self.db = Database(settings.resolved_database_url, reads_here=True)
        self.events = EventBus()
        self.vault = Vault(settings, self.db, self.events)
        self.tenants = TenantService(self.db, self.events)
        self.tokens = TokenService(self.db, self.events)
        # The ledger key derives from the vault's master key (read when first needed).
        self.governance = Governance(
            settings, self.db, self.events, lambda: self.vault.master, self.on_stop
        )
        self.authorizer: Authorizer = self.governance.authorizer
        self.tenants.on_resolve(self.governance.ready)  # policy sets load on first use
        self.authentication = Authentication(self.governance.identity, self.tokens)
        self.metadata = MetadataService(self.db, self.events)
        # An app's changes write their ledger entries (and a publish's policy.changed) in
        # their own transaction.
        self.metadata.effects.append(self.governance.effect)
        self.files = AppFiles(self.metadata)
        self.outbox = Outbox(self.db, self.events)
        self.records = RecordService(
            self.db,
            self.events,
            self.metadata,
            lambda: self.authorizer,
            settings.data_dir,
            self.outbox,
            open_files=settings.tenant_files_open,
            pool_size=settings.tenant_pool_size,
            cached_apps=settings.app_cache,
        )
        self.workflows = WorkflowService(self)
        self.regions = Regions(settings, self.db)
        self.compliance = ComplianceService(
            self.db, self.events, self.tenants, self.metadata, self.regions
        )
        self.artifacts = ArtifactCache()  # every compile target's output, by version hash
        self.admin_token: IssuedToken | None = None
        self.on_stop(self.records.close)
        self.governance.on_load.append(self.records.prime)  # one read for a cold tenant
        self.plugins = PluginService(self)
        self.records.before_write.append(self.plugins.records_hook)  # plugins' hooks
        self.vault.rewrap_hooks.append(self.governance.audit.rewrap_master)
        self.records.storage.regions = self.regions  # app data lives in the home region
        self.tenants.on_request(self._expect)
        # Compliance guards the runtime's reads and writes.
        self.records.guard = self.compliance.enforce(
            self.records, self.vault, lambda: self.authorizer
        )
        self.compliance.effects.append(self.governance.audit.recorded)  # in each change's txn
        self.quotas = Quotas(settings, GatewaySettings(self.db, self.tenants))
        self.connectors = ConnectorService(
            settings,
            self.db,
            self.events,
            self.vault,
            self.quotas,
            self.authorizer,
            self.tenants,
            self.metadata,
            self.cluster,
        )
        self.on_stop(self.connectors.close)
        self.connectors.on_webhook(self.workflows.start_from_webhook)  # in the receipt's txn
        # A record write's side effects, dispatched from its outbox rows in this order.
        self.outbox.effects += [
            self.governance.audit.effect,
            self.connectors.webhooks.effect,
            self.workflows.effect,
        ]
        self.outbox.plans += [  # the same, as prebuilt writes (one trip on SQLite)
            self.governance.audit.plan,
            self.connectors.webhooks.plan,
            self.workflows.plan,
        ]
        self.outbox.after.append(self.connectors.webhooks.wake)
        # A batch of workflow starts records its `workflow.started` events the same way, in
        # its own transaction (the ledger's entries and the webhooks' deliveries).
        self.workflows.engine.effects += [
            self.governance.audit.effect,
            self.connectors.webhooks.effect,
        ]
        self.workflows.engine.after.append(self.connectors.webhooks.wake)
        # Effects are dispatched off the request path: their readers in this process wait
        # for what it committed so far (read your own writes).
        self.governance.audit.settle = self.outbox.settled
        self.connectors.webhooks.settle = self.outbox.settled
        self.workflows.engine.settle = self.outbox.settled
        self.compliance.settle = self.outbox.settled
        self._outbox_stop = asyncio.Event()
        self._outbox_worker: asyncio.Task[None] | None = None
        # The data inventory: each layer declares where it copies record values to.
        self.compliance.inventory.register(
            *runtime_copies.sites(),
            runtime_copies.outbox_site(self.records),
            *WorkflowCopies(self.db).sites(),
            *IntegrationCopies(self.db).sites(),
            *governance_copies.sites(),
            *PluginCopies(self.db).sites(),
        )
        self._publish_steps()
        self.designer = DesignerService(self.db, self.events, self.metadata, self.cluster)
        self.on_stop(self.designer.stop)

    def _expect(self, tenant: Tenant, bearer: str) -> None:
        """A GET of one of `tenant`'s apps, whose gateway settings are being read: if its token
        is one this process trusts now, of a caller who may enter the tenant, the tenant's
        data is made ready while the request's other work runs (its file starts opening; in
        PostgreSQL a connection is set to its schema), so a cold tenant's first read waits
        for little of that. A stranger's request makes nothing ready: it must not be able to
        churn which files a node keeps open."""
        caller = self.authentication.known(bearer)
        if caller is not None and (caller.is_platform_admin or caller.tenant_id == tenant.id):
            self.records.storage.prepare(tenant)

    def _publish_steps(self) -> None:
        """The publish story's steps, phase by phase (metadata/publish.py tells the story)."""
        publishing = self.metadata.publishing
        publishing.register("check", WorkflowStep(self.plugins.actions))  # plugin calls
        publishing.register("check", PluginComponentsStep(self.plugins.version_of))  # elements
        publishing.register("check", ComplianceStep(self.compliance))  # the tenant's packs
        publishing.register("compile", CompileStep(self.records))
        publishing.register("migrate", MigrateStep(self.records))
        publishing.require("check", "compile", "migrate")
        publishing.verify()

    async def start(self, *, workers: bool = False, listen: bool | None = None) -> None:
        """Migrate the database and store the preset admin token (PLINTH_ADMIN_TOKEN), if any.

        `workers`: also run the workflow and webhook-delivery workers in this process (when
        `settings.embedded_worker`). Only a server asks for them: a CLI command must not work
        the queues behind the operator's back. `listen` (default: `workers`): hear other
        processes' publishes, rollbacks and deletes (a CLI command only tells them)."""
        # Fail here, not at the first audit append: the ledger, the vault and field encryption
        # all derive their keys from the master key, and scaled-out nodes must share one.
        _ = self.vault.master
        await self.db.migrate()
        if self.settings.admin_token:  # a preset; generated ones are made where they are shown
            self.admin_token = await self.tokens.ensure_admin(self.settings.admin_token)
        await self.governance.start()
        # Other processes hear of publishes, rollbacks and deletes: through Redis when there
        # is one, else through the platform database's change log.
        if self.cluster.redis is not None:
            relay = RedisRelay(self.events, self.cluster)
            await relay.start()
            self.on_stop(relay.stop)
        else:
            log_relay = LogRelay(self.events, self.db)
            await log_relay.start(listen=workers if listen is None else listen)
            self.on_stop(log_relay.stop)
        if self.settings.siblings_dir and not self.settings.redis_url:
            # The other worker processes of this server hear at once (acknowledged), not
            # at their next look at the change log.
            from plinth.siblings import SiblingRelay

            siblings = SiblingRelay(self.events, self.settings.siblings_dir)
            await siblings.start()
            self.on_stop(siblings.stop)
        if workers and self.settings.embedded_worker:
            self.governance.start_anchoring()
            await self.workflows.start_worker()
            self.on_stop(self.workflows.stop_worker)
            await self.connectors.start_worker()  # webhook deliveries (stopped by close)
            self.start_outbox_worker()

    def start_outbox_worker(self) -> None:
        """Dispatch what record writes left in their outboxes (a crash, a failed dispatch)."""
        self._outbox_stop.clear()
        self._outbox_worker = asyncio.create_task(
            self.outbox.work(self._outbox_stop, self.record_databases)
        )
        self.on_stop(self._stop_outbox_worker)

    async def _stop_outbox_worker(self) -> None:
        self._outbox_stop.set()
        if self._outbox_worker is not None:
            await self._outbox_worker
            self._outbox_worker = None

    async def record_databases(self, everything: bool) -> AsyncIterator[Database]:
        """The databases holding records: every tenant's (each opened as its turn comes), or
        those open now."""
        storage = self.records.storage
        if not everything:
            for db in storage.open_databases():
                yield db
            return
        seen: set[str] = set()
        for tenant in await self.tenants.list():
            if self._outbox_stop.is_set():
                return  # stopping: the rest stays owed (the worker keeps its marker)
            if await storage.peek(tenant, ANY_ROW) == []:
                continue  # nothing left in its outbox (or no file yet): not opened for that
            db = storage.database(tenant)
            if db.url not in seen:
                seen.add(db.url)
                yield db

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._on_stop.append(hook)

    async def stop(self) -> None:
        try:
            await self.outbox.close()  # what this process committed is dispatched first
        except Exception:
            log.exception("outbox close failed")
        for hook in reversed(self._on_stop):
            try:
                await hook()
            except Exception:
                log.exception("stop hook failed")
        await self.regions.close()
        await self.db.dispose()
