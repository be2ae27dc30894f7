"""Entities compiled once per published version; requests only look them up.

A `CompiledApp` is immutable. Publishing builds a new one and swaps it into the `Registry` with
one dict assignment, so a request that already holds the old one finishes on it.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from plinth.db import Query
from plinth.errors import ValidationFailed
from plinth.governance.compliance.enforcement import Protection
from plinth.jsonschema import Validator, compile_schema
from plinth.runtime import expressions, tables, types
from plinth.runtime.expressions import Program

# Table.info key: the shape of a compiled table (`table_tag`).
TAG = "plinth_version"


def entity_schema(doc: dict[str, Any], *, for_output: bool = False) -> dict[str, Any]:
    """The JSON Schema of an entity's input (or, `for_output`, of a stored record)."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in doc.get("fields", {}).items():
        if "computed" in spec and not for_output:
            continue
        s = types.json_schema(spec)
        if spec.get("required") and not for_output:
            required.append(name)
        else:
            s = (
                {"anyOf": [s, {"type": "null"}]}
                if "type" not in s
                else {**s, "type": _with_null(s["type"])}
            )
            if "enum" in s:
                s["enum"] = [*s["enum"], None]
        if spec.get("label"):
            s["title"] = spec["label"]
        if spec.get("description"):
            s["description"] = spec["description"]
        props[name] = s
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _with_null(t: str | list[str]) -> list[str]:
    return [*(t if isinstance(t, list) else [t]), "null"]


class Plans:
    """Statements of an entity's list reads, built once per shape and reused.

    A statement object built again per request costs its construction and SQLAlchemy's cache
    key (walking the whole statement); the same object reused has both memoised. The key is
    everything the statement is built from (the filter, the row policy's residual, the sort,
    the page size); at most `bound` shapes, the least recently used dropped first."""

    def __init__(self, bound: int = 256) -> None:
        self.bound = bound
        self._found: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        found = self._found.get(key)
        if found is not None:
            self._found.move_to_end(key)
            return found
        found = self._found[key] = build()
        while len(self._found) > self.bound:
            self._found.popitem(last=False)
        return found


@dataclass
class CompiledEntity:
    name: str
    id: str
    doc: dict[str, Any]
    fields: dict[str, dict[str, Any]]
    table: sa.Table
    validator: Validator
    computed: dict[str, Program]
    rules: list[tuple[Program, str, str]]
    references: dict[str, str]  # field -> target entity
    insert: Any = None
    unique: dict[str, str] = field(default_factory=dict)  # index name -> field (for 409s)
    select: Any = None
    one: Any = None  # `select` as a plinth.db.Query
    protection: Protection = field(default_factory=lambda: Protection.of({}))
    app: str = ""  # the app's slug (what encrypted values are bound to)
    plans: Plans = field(default_factory=Plans)  # list statements by shape
    # Statements built once for this version of the entity, by what they write (the columns
    # a create sets): SQLAlchemy compiles each once, and a request only binds values.
    statements: dict[Any, Any] = field(default_factory=dict)
    # Each field with what turns its stored value into JSON (None: as it is), worked out on
    # first use (`records.to_record`): a page of records converts each value directly.
    converters: list[tuple[str, Any]] | None = None

    @property
    def input_fields(self) -> set[str]:
        return {n for n, s in self.fields.items() if "computed" not in s}


@dataclass
class CompiledApp:
    tenant_id: str
    app_slug: str
    version: int
    definition: dict[str, Any]
    entities: dict[str, CompiledEntity] = field(default_factory=dict)


def table_tag(table: sa.Table) -> str:
    """A short name for a table's shape (its name, columns and their types): statements on it
    carry it, so on PostgreSQL they are shared by every tenant whose table has this shape and
    never by two shapes whose columns differ (see runtime.storage)."""
    shape = [table.name] + [f"{c.name}:{c.type!r}:{c.nullable}" for c in table.columns]
    return "v" + hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def compile_app(
    tenant_id: str, app_slug: str, version: int, definition: dict[str, Any]
) -> CompiledApp:
    """Compile every entity of a version (raises ValidationFailed on a bad expression).

    The tables name no schema: a tenant's statements reach its own tables through the
    connection they run on (its SQLite file, or its PostgreSQL schema as the search path), so
    the compiled entities and their statement text are the same for every tenant."""
    metadata = sa.MetaData()
    app = CompiledApp(tenant_id, app_slug, version, definition)
    faults = []
    for name, doc in definition.get("entities", {}).items():
        found, computed, rules = expressions.compile_entity(name, doc)
        faults += found
        table = tables.build(metadata, app_slug, name, doc, None)
        table.info[TAG] = table_tag(table)
        entity = CompiledEntity(
            name=name,
            id=doc.get("id", name),
            doc=doc,
            fields=doc.get("fields", {}),
            table=table,
            validator=compile_schema(entity_schema(doc)),
            computed=computed,
            rules=rules,
            references={
                n: s["entity"] for n, s in doc.get("fields", {}).items() if s["type"] == "reference"
            },
            protection=Protection.of(doc),
            app=app_slug,
        )
        # Prebuilt statements: per request only parameters are bound.
        entity.insert = table.insert()
        entity.select = sa.select(table).where(table.c.id == sa.bindparam("record_id"))
        entity.one = Query(entity.select)  # GET one: prepared once per dialect
        for fname, spec in entity.fields.items():
            if spec.get("unique"):
                entity.unique[tables.index_name(app_slug, entity.id, (spec["id"],))] = fname
        app.entities[name] = entity
    if faults:
        raise ValidationFailed.of(faults, "app definition")
    return app


class Registry:
    """The compiled app of each (tenant, app), swapped whole on publish; at most `bound` of
    them, the least recently used dropped first (compiled again on their next use).

    Tenants often run the same app (a template, a clone): the compiled entities of one
    version are shared by every tenant whose active version has the same content hash (on
    SQLite and PostgreSQL alike: the tables name no schema), so a cold tenant of a known app
    compiles nothing."""

    def __init__(self, bound: int = 10_000, shared: int = 1_000) -> None:
        self.bound = bound
        self._apps: OrderedDict[tuple[str, str], CompiledApp] = OrderedDict()
        self._shared_bound = shared
        self._shared: OrderedDict[tuple[str, str], dict[str, CompiledEntity]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._apps)

    def get(self, tenant_id: str, app_slug: str) -> CompiledApp | None:
        key = (tenant_id, app_slug)
        found = self._apps.get(key)
        if found is not None:
            self._apps.move_to_end(key)
        return found

    def put(self, app: CompiledApp) -> None:
        self._apps[(app.tenant_id, app.app_slug)] = app
        self._apps.move_to_end((app.tenant_id, app.app_slug))
        while len(self._apps) > self.bound:
            self._apps.popitem(last=False)

    def compile(
        self,
        tenant_id: str,
        app_slug: str,
        version: int,
        digest: str,
        definition: dict[str, Any],
    ) -> CompiledApp:
        """The compiled app of a version whose content hash is `digest` (shared entities)."""
        key = (app_slug, digest)
        entities = self._shared.get(key)
        if entities is not None:
            self._shared.move_to_end(key)
            return CompiledApp(tenant_id, app_slug, version, definition, entities)
        app = compile_app(tenant_id, app_slug, version, definition)
        self._shared[key] = app.entities
        while len(self._shared) > self._shared_bound:
            self._shared.popitem(last=False)
        return app

    def drop(self, tenant_id: str, app_slug: str) -> None:
        self._apps.pop((tenant_id, app_slug), None)
