"""The metadata repository: apps, their draft, published versions, diff and rollback."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jsonpatch
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth.db import Database, utcnow
from plinth.errors import Conflict, Fault, NotFound, PreconditionFailed, ValidationFailed
from plinth.events import Effect, Event, EventBus, take_effects
from plinth.governance.principal import Principal
from plinth.ids import check_slug, new_id
from plinth.metadata import definition as definitions
from plinth.metadata import publish as pipeline
from plinth.metadata import references, store
from plinth.metadata.diff import diff as diff_definitions
from plinth.metadata.models import App, Draft, Version
from plinth.tenancy.models import Tenant

MAX_PATCH_OPS = 1000
MAX_VERSION = 2**31 - 1  # versions are numbered in an INTEGER column
Change = Callable[[dict[str, Any]], Any]  # the old definition -> the new one


class DraftLog(Protocol):
    """Where a co-edited draft's truth lives (the designer's CRDT update log).

    The REST draft is derived from it: `settle` brings the REST draft up to every logged
    update before it is read, and REST writes go through `write`, into the log first."""

    async def settle(self, tenant: Tenant, slug: str) -> None: ...

    async def write(
        self,
        tenant: Tenant,
        slug: str,
        change: Change,
        by: str | None,
        if_revision: int | None,
        also: AlsoWrite | None = None,
    ) -> Draft: ...


# Run inside the transaction that writes a draft (the designer records how far the REST draft
# reflects its log in the same commit; a compliance fix, its record and ledger entry).
AlsoWrite = Callable[[AsyncConnection, Draft], Awaitable[None]]


@dataclass
class PublishOutcome:
    version: Version
    created: bool  # False when the draft matched the active version (no-op publish)
    results: list[pipeline.StepResult] = field(default_factory=list)

    def as_dict(self, active: int | None = None) -> dict[str, Any]:
        return {
            "version": self.version.summary(active if active is not None else self.version.number),
            "created": self.created,
            "steps": [r.as_dict() for r in self.results],
        }


class MetadataService:
    def __init__(self, db: Database, events: EventBus) -> None:
        self.db = db
        self.events = events
        self.draft_log: DraftLog | None = None  # set by the designer when it runs
        # Run in each change's transaction with its events (the ledger's entries, set by the
        # composition root): a crash leaves an app change with its entries, or neither.
        self.effects: list[Effect] = []
        # The publish story (metadata/publish.py); other layers' steps are registered on it.
        self.publishing = pipeline.Publishing()

    # -- apps -------------------------------------------------------------------------------

    async def create_app(
        self,
        tenant: Tenant,
        slug: str,
        name: str | None = None,
        description: str = "",
        by: str | None = None,
        *,
        draft: dict[str, Any] | None = None,
        cloned_from: str | None = None,
    ) -> App:
        """Create an app with an empty draft (or a copy of `draft`, when cloning)."""
        check_slug(slug, "App")
        app = App(new_id(), tenant.id, slug, name or slug, description, None, utcnow())
        data = {"app": slug, "by": by} | ({"cloned_from": cloned_from} if cloned_from else {})
        try:
            async with self.db.transaction() as conn:
                if await store.app_by_slug(conn, tenant.id, slug):
                    raise Conflict(
                        f"App {slug!r} already exists in tenant {tenant.slug!r}", path="slug"
                    )
                await store.insert_app(conn, app)
                await store.write_draft(
                    conn,
                    Draft(app.id, draft or definitions.empty(), 1, utcnow(), by),
                    expected_revision=None,
                )
                events = await self._effects(conn, Event("app.created", tenant.id, data))
        except IntegrityError as exc:
            raise Conflict(f"App {slug!r} already exists", path="slug") from exc
        await self._publish(events)
        return app

    async def clone_app(
        self, tenant: Tenant, source: str, slug: str, name: str | None = None, by: str | None = None
    ) -> App:
        """A new app whose draft is a copy of `source`'s draft (no versions, no data)."""
        original = await self.get_app(tenant, source)
        draft = await self.get_draft(tenant, source)
        return await self.create_app(
            tenant,
            slug,
            name or f"{original.name} (copy)",
            original.description,
            by,
            draft=copy.deepcopy(draft.definition),
            cloned_from=source,
        )

    async def list_apps(self, tenant: Tenant) -> list[App]:
        async with self.db.read() as conn:
            return await store.apps_of(conn, tenant.id)

    async def get_app(self, tenant: Tenant, slug: str) -> App:
        async with self.db.read() as conn:
            return await self._app(conn, tenant, slug)

    async def delete_app(self, tenant: Tenant, slug: str, by: str | None = None) -> None:
        async with self.db.transaction() as conn:
            app = await self._app(conn, tenant, slug, lock=True)
            await store.delete_app(conn, app.id)
            deleted = Event("app.deleted", tenant.id, {"app": slug, "app_id": app.id, "by": by})
            events = await self._effects(conn, deleted)
        await self._publish(events)

    async def _effects(self, conn: AsyncConnection, event: Event) -> list[Event]:
        """The change's `effects`, in its transaction `conn`: what to publish once it commits."""
        return await take_effects(self.effects, conn, [event])

    async def _publish(self, events: list[Event]) -> None:
        """Tell of a committed change: caches, triggers and the other nodes hear of it."""
        for event in events:
            await self.events.publish(event)

    @staticmethod
    async def _app(conn: Any, tenant: Tenant, slug: str, lock: bool = False) -> App:
        app = await store.app_by_slug(conn, tenant.id, slug, lock=lock)
        if app is None:
            raise NotFound(f"No app named {slug!r} in tenant {tenant.slug!r}", path="app")
        return app

    # -- draft ------------------------------------------------------------------------------

    async def get_draft(self, tenant: Tenant, slug: str, *, settle: bool = True) -> Draft:
        """The draft, brought up to the co-editing log first (`settle=False`: as stored)."""
        if settle and self.draft_log is not None:
            await self.draft_log.settle(tenant, slug)
        async with self.db.read() as conn:
            app = await self._app(conn, tenant, slug)
            draft = await store.draft_of(conn, app.id)
        assert draft is not None
        return draft

    async def put_draft(
        self,
        tenant: Tenant,
        slug: str,
        body: Any,
        *,
        by: str | None = None,
        if_revision: int | None = None,
        through_log: bool = True,
        also: AlsoWrite | None = None,
    ) -> Draft:
        """Replace the draft with a validated definition (through the co-editing log, unless
        the log itself is writing what it settled: `through_log=False`)."""
        return await self.write_draft(
            tenant, slug, lambda _old: body, by, if_revision, through_log=through_log, also=also
        )

    async def patch_draft(
        self,
        tenant: Tenant,
        slug: str,
        ops: Any,
        *,
        by: str | None = None,
        if_revision: int | None = None,
        also: AlsoWrite | None = None,
    ) -> Draft:
        """Apply an RFC 6902 JSON Patch to the draft, all operations or none (`also`: run in
        the transaction that writes it)."""
        if not isinstance(ops, list) or len(ops) > MAX_PATCH_OPS:
            raise ValidationFailed.of(
                [Fault("", f"a JSON Patch is a list of at most {MAX_PATCH_OPS} operations")],
                "patch",
            )

        def apply(old: dict[str, Any]) -> Any:
            try:
                return jsonpatch.JsonPatch(ops).apply(old)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                index = _failed_op(ops, old)
                raise ValidationFailed.of(
                    [Fault(f"[{index}]", f"patch operation failed: {exc}", "patch_failed")],
                    "patch",
                ) from exc
            except (TypeError, KeyError, AttributeError) as exc:
                raise ValidationFailed.of(
                    [Fault("", f"malformed patch operation: {exc}", "patch_malformed")],
                    "patch",
                ) from exc

        return await self.write_draft(tenant, slug, apply, by, if_revision, also=also)

    async def rename_field(
        self,
        tenant: Tenant,
        slug: str,
        entity: str,
        field_id: str,
        to: str,
        *,
        by: str | None = None,
        if_revision: int | None = None,
    ) -> tuple[Draft, references.Renamed]:
        """Rename a field by its stable id and rewrite every reference to it in the draft,
        as one draft change (co-editors see it like any other edit)."""
        done: list[references.Renamed] = []

        def change(old: dict[str, Any]) -> dict[str, Any]:
            done.append(references.rename_field(old, entity, field_id, to))
            return done[-1].definition

        draft = await self.write_draft(tenant, slug, change, by, if_revision)
        return draft, done[-1]

    async def write_draft(
        self,
        tenant: Tenant,
        slug: str,
        change: Change,
        by: str | None,
        if_revision: int | None,
        *,
        through_log: bool = True,
        also: AlsoWrite | None = None,
    ) -> Draft:
        """Change the draft with `change` (old definition -> new), validated."""
        if through_log and self.draft_log is not None:
            return await self.draft_log.write(tenant, slug, change, by, if_revision, also)
        async with self.db.transaction() as conn:
            app = await self._app(conn, tenant, slug)
            old = await store.draft_of(conn, app.id)
            assert old is not None
            if if_revision is not None and if_revision != old.revision:
                raise PreconditionFailed(
                    f"The draft changed (revision {old.revision}, you had {if_revision}); "
                    "reload it and apply your change again",
                    path="draft",
                )
            body = change(old.definition)
            definitions.check(body, "draft")
            body = definitions.assign_ids(body, old.definition)
            draft = Draft(app.id, body, old.revision + 1, utcnow(), by)
            if not await store.write_draft(conn, draft, expected_revision=old.revision):
                raise PreconditionFailed("The draft changed concurrently; retry", path="draft")
            if also is not None:
                await also(conn, draft)
            data = {"app": slug, "revision": draft.revision, "by": by}
            events = await self._effects(conn, Event("draft.updated", tenant.id, data))
        await self._publish(events)
        return draft

    # -- versions ---------------------------------------------------------------------------

    async def publish(
        self,
        tenant: Tenant,
        slug: str,
        principal: Principal | None = None,
        *,
        message: str = "",
        options: dict[str, Any] | None = None,
    ) -> PublishOutcome:
        """Freeze the draft into a new active version, through every pipeline step."""
        by = principal.audit_name() if principal else None
        started: list[pipeline.PublishContext] = []  # set once steps may have done work
        if self.draft_log is not None:  # publish what the co-editors see, never a stale draft
            await self.draft_log.settle(tenant, slug)
        try:
            async with self.db.transaction() as conn:
                app = await self._app(conn, tenant, slug, lock=True)
                draft = await store.draft_of(conn, app.id)
                assert draft is not None
                digest = definitions.content_hash(draft.definition)
                active = (
                    await store.version(conn, app.id, app.active_version)
                    if app.active_version
                    else None
                )
                if active is not None and active.hash == digest:
                    return PublishOutcome(active, created=False)
                number = await store.latest_number(conn, app.id) + 1
                ctx = pipeline.PublishContext(
                    tenant=tenant,
                    app=app,
                    principal=principal,
                    reason="publish",
                    number=number,
                    definition=draft.definition,
                    previous=active,
                    options=dict(options or {}),
                    conn=conn,
                )
                started.append(ctx)
                await self.publishing.run(ctx)  # validate, check, compile, migrate
                # activate: the version and the app's pointer, in the same transaction
                version = Version(app.id, number, digest, draft.definition, message, by, utcnow())
                await store.insert_version(conn, version)
                await store.set_active(conn, app.id, number)
                published = Event(
                    "app.published",
                    tenant.id,
                    {
                        "app": slug,
                        "app_id": app.id,
                        "version": number,
                        "hash": digest,
                        "by": by,
                        "previous": active.number if active else None,
                    },
                )
                events = await self._effects(conn, published)  # the audit, with the version
        except BaseException:
            # Also when the COMMIT itself fails: steps undo what they did outside it.
            for ctx in started:
                await _run_hooks(ctx.after_rollback)
            raise
        await _run_hooks(ctx.after_commit)  # the steps swap in what they prepared
        # announce: policy cache, triggers and the other nodes hear of it
        await self._publish(events)
        return PublishOutcome(version, created=True, results=ctx.results)

    async def rollback(
        self,
        tenant: Tenant,
        slug: str,
        number: int,
        principal: Principal | None = None,
        *,
        reset_draft: bool = False,
        options: dict[str, Any] | None = None,
    ) -> PublishOutcome:
        """Activate an older version (the pipeline's steps re-apply what it needs)."""
        by = principal.audit_name() if principal else None
        started: list[pipeline.PublishContext] = []
        try:
            async with self.db.transaction() as conn:
                app = await self._app(conn, tenant, slug, lock=True)
                target = (
                    await store.version(conn, app.id, number) if 0 < number <= MAX_VERSION else None
                )
                if target is None:
                    raise NotFound(f"App {slug!r} has no version {number}", path="version")
                active = (
                    await store.version(conn, app.id, app.active_version)
                    if app.active_version
                    else None
                )
                if active is not None and active.number == number:
                    return PublishOutcome(target, created=False)
                ctx = pipeline.PublishContext(
                    tenant=tenant,
                    app=app,
                    principal=principal,
                    reason="rollback",
                    number=number,
                    definition=target.definition,
                    previous=active,
                    options=dict(options or {}),
                    conn=conn,
                )
                started.append(ctx)
                await self.publishing.run(ctx)
                await store.set_active(conn, app.id, number)
                if reset_draft:
                    old = await store.draft_of(conn, app.id)
                    assert old is not None
                    await store.write_draft(
                        conn,
                        Draft(app.id, target.definition, old.revision + 1, utcnow(), by),
                        expected_revision=old.revision,
                    )
                rolled_back = Event(
                    "app.rolled_back",
                    tenant.id,
                    {
                        "app": slug,
                        "app_id": app.id,
                        "version": number,
                        "by": by,
                        "previous": active.number if active else None,
                    },
                )
                events = await self._effects(conn, rolled_back)
        except BaseException:
            for ctx in started:
                await _run_hooks(ctx.after_rollback)
            raise
        await _run_hooks(ctx.after_commit)
        await self._publish(events)
        return PublishOutcome(target, created=False, results=ctx.results)

    async def versions(self, tenant: Tenant, slug: str) -> tuple[App, list[Version]]:
        async with self.db.read() as conn:
            app = await self._app(conn, tenant, slug)
            return app, await store.versions_of(conn, app.id)

    async def version(self, tenant: Tenant, slug: str, number: int) -> Version:
        if not 0 < number <= MAX_VERSION:  # no such version (and no integer overflow in SQL)
            raise NotFound(f"App {slug!r} has no version {number}", path="version")
        async with self.db.read() as conn:
            app = await self._app(conn, tenant, slug)
            found = await store.version(conn, app.id, number)
        if found is None:
            raise NotFound(f"App {slug!r} has no version {number}", path="version")
        return found

    async def active_version(self, tenant: Tenant, slug: str) -> Version | None:
        """The active version of an app, or None before its first publish."""
        async with self.db.read() as conn:
            found = await store.active_version(conn, tenant.id, slug)
            if found is None:
                await self._app(conn, tenant, slug)  # an unknown app is NotFound
            return found

    async def diff(
        self, tenant: Tenant, slug: str, from_: int | str, to: int | str
    ) -> list[dict[str, Any]]:
        """Structured diff between two versions; `draft` names the draft, `0` the empty app."""
        return diff_definitions(
            await self.definition_at(tenant, slug, from_),
            await self.definition_at(tenant, slug, to),
        )

    async def definition_at(self, tenant: Tenant, slug: str, ref: int | str) -> dict[str, Any]:
        """The definition of the draft (`"draft"`), of version `ref`, or nothing (0)."""
        if ref == "draft":
            return (await self.get_draft(tenant, slug)).definition
        try:
            number = int(ref)
        except ValueError as exc:
            raise ValidationFailed.of(
                [Fault("from", f"{ref!r} is not a version number or 'draft'")], "query"
            ) from exc
        if number == 0:
            return {}
        return (await self.version(tenant, slug, number)).definition


async def _run_hooks(hooks: list[Any]) -> None:
    for hook in hooks:
        await hook()


def _failed_op(ops: list[Any], doc: Any) -> int:
    """Index of the first operation of `ops` that fails on `doc` (for the fault's path)."""
    current = doc
    for i, op in enumerate(ops):
        try:
            current = jsonpatch.JsonPatch([op]).apply(current)
        except Exception:
            return i
    return len(ops) - 1


class AppFiles:
    """Export/import of apps as folders of YAML (see `plinth.metadata.files`)."""

    def __init__(self, metadata: MetadataService) -> None:
        self.metadata = metadata

    async def export(self, tenant: Tenant, slug: str, ref: int | str = "draft") -> dict[str, str]:
        """The files of an app: of its draft, its active version (`active`) or version N."""
        from plinth.metadata.files import to_files

        app = await self.metadata.get_app(tenant, slug)
        if ref == "active":
            if app.active_version is None:
                raise NotFound(f"App {slug!r} has no published version yet", path="version")
            ref = app.active_version
        body = await self.metadata.definition_at(tenant, slug, ref)
        return to_files(app.public(), body)

    async def import_folder(
        self,
        tenant: Tenant,
        folder: Any,
        *,
        slug: str | None = None,
        by: str | None = None,
    ) -> tuple[App, Draft]:
        """Create the app if needed and make the folder's definition its draft."""
        from plinth.metadata.files import read_folder

        head, body = read_folder(folder)
        slug = slug or head["app"]
        try:
            app = await self.metadata.get_app(tenant, slug)
        except NotFound:
            app = await self.metadata.create_app(
                tenant,
                slug,
                head.get("name"),
                head.get("description", ""),
                by=by,
            )
        draft = await self.metadata.put_draft(tenant, slug, body, by=by)
        return app, draft
