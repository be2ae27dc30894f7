"""The migration planner: what must change in the tables to go from one version to another.

Pure. Entities and fields are matched on their stable ids, so a rename is a rename (data kept)
and never a drop plus an add. Rolling back plans from the active version to the older one,
which is exactly the inverse of the publish that led here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from plinth.runtime import types


@dataclass(frozen=True)
class Op:
    """One schema change. `destructive` ones need `allow_destructive`."""

    kind: str  # create_table drop_table rename_table add_column drop_column rename_column
    #            alter_column create_index drop_index
    entity: str  # the entity name in the *new* definition (old name for drops)
    field: str = ""
    old: str = ""  # previous name (renames) or previous spec's field name
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    old_spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    index: tuple[str, ...] = ()  # field ids of an index
    unique: bool = False
    destructive: bool = False

    def describe(self) -> str:
        """A sentence for the publish report and the audit trail."""
        what = {
            "create_table": f"create table for {self.entity}",
            "drop_table": f"drop entity {self.entity} and its data",
            "rename_table": f"rename entity {self.old} to {self.entity}",
            "add_column": f"add field {self.entity}.{self.field}",
            "drop_column": f"drop field {self.entity}.{self.field} and its data",
            "rename_column": f"rename field {self.entity}.{self.old} to {self.field}",
            "alter_column": f"store {self.entity}.{self.field} in clear (no longer encrypted)"
            if decrypts(self.old_spec, self.spec)
            else f"change {self.entity}.{self.field} from "
            f"{self.old_spec.get('type')} to {self.spec.get('type')}",
            "create_index": f"add {'unique ' if self.unique else ''}index on {self.entity}",
            "drop_index": f"drop index on {self.entity}",
        }[self.kind]
        return what


def stored_fields(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Fields that have a column (computed fields are stored too, so they can be queried)."""
    return dict(doc.get("fields", {}))


def indexes(doc: dict[str, Any]) -> set[tuple[tuple[str, ...], bool]]:
    """An entity's indexes as (field ids, unique), from field flags and `indexes`."""
    fields = stored_fields(doc)
    found: set[tuple[tuple[str, ...], bool]] = set()
    for spec in fields.values():
        if spec.get("unique"):
            found.add(((spec["id"],), True))
        elif spec.get("index") or spec.get("type") == "reference":
            found.add(((spec["id"],), False))
    for index in doc.get("indexes", []):
        ids = tuple(fields[f]["id"] for f in index["fields"] if f in fields)
        found.add((ids, bool(index.get("unique"))))
    return found


def _by_id(docs: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {doc.get("id", name): (name, doc) for name, doc in docs.items()}


def plan(old: dict[str, Any], new: dict[str, Any]) -> list[Op]:
    """The ordered operations turning the tables of `old` into those of `new`."""
    ops: list[Op] = []
    old_entities = _by_id(old.get("entities", {}))
    new_entities = _by_id(new.get("entities", {}))
    for eid, (oname, odoc) in old_entities.items():
        if eid not in new_entities:
            ops.append(Op("drop_table", oname, spec=odoc, destructive=True))
    for eid, (name, doc) in new_entities.items():
        if eid not in old_entities:
            ops.append(Op("create_table", name, spec=doc))
            for ids, unique in sorted(indexes(doc)):
                ops.append(Op("create_index", name, index=ids, unique=unique))
            continue
        oname, odoc = old_entities[eid]
        if oname != name:
            ops.append(Op("rename_table", name, old=oname))
        ops += _fields(name, odoc, doc)
    return ops


def _fields(entity: str, odoc: dict[str, Any], doc: dict[str, Any]) -> list[Op]:
    ops: list[Op] = []
    old_fields = _by_id(stored_fields(odoc))
    new_fields = _by_id(stored_fields(doc))
    old_ix, new_ix = indexes(odoc), indexes(doc)
    # A type change rebuilds the column, which takes its indexes with it: rebuild them too.
    retyped = {
        fid
        for fid, (_, spec) in new_fields.items()
        if fid in old_fields
        and (
            types.storage_changed(old_fields[fid][1], spec)
            or old_fields[fid][1]["type"] != spec["type"]
            or decrypts(old_fields[fid][1], spec)
        )
    }
    rebuilt = {ix for ix in old_ix & new_ix if retyped & set(ix[0])}
    new_ix = new_ix - rebuilt
    for ids, unique in sorted(old_ix - new_ix):
        ops.append(Op("drop_index", entity, index=ids, unique=unique))
    for fid, (oname, ospec) in old_fields.items():
        if fid not in new_fields:
            ops.append(Op("drop_column", entity, field=oname, spec=ospec, destructive=True))
    for fid, (name, spec) in new_fields.items():
        if fid not in old_fields:
            ops.append(Op("add_column", entity, field=name, spec=spec))
            continue
        oname, ospec = old_fields[fid]
        if oname != name:
            ops.append(Op("rename_column", entity, field=name, old=oname))
        if (
            types.storage_changed(ospec, spec)
            or ospec["type"] != spec["type"]
            or decrypts(ospec, spec)
        ):
            ops.append(
                Op(
                    "alter_column",
                    entity,
                    field=name,
                    spec=spec,
                    old_spec=ospec,
                    destructive=types.is_narrowing(ospec, spec),
                )
            )
    for ids, unique in sorted((new_ix - old_ix) | rebuilt):
        ops.append(Op("create_index", entity, index=ids, unique=unique))
    return ops


def decrypts(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a field stops being encrypted: its stored values must be opened (the column is
    rebuilt with them in clear, even when its SQL type stays the same)."""
    return bool(old.get("encrypted")) and not new.get("encrypted")


def destructive(ops: list[Op]) -> list[Op]:
    """The operations that would destroy data."""
    return [op for op in ops if op.destructive]
