"""The CRDT shape of a draft and its conversion to and from the metadata definition format.

Shaped for concurrent merges (see the issue's pitfalls):

    entities: Map  id -> Map{name, pos, attrs: Map, fields: Map id -> Map{name, pos, attrs: Map}}
    sections: Map  section -> JSON (pages, workflows, … edited whole for now)

Entities and fields are keyed by their stable id, never by position, so two people adding a
field each both keep theirs; order is a `pos` number, so a move changes one key instead of a
delete + insert (which duplicates under concurrency). A node's nested maps are created
together with the node. Attribute values are plain JSON, last writer wins per attribute.
"""

from __future__ import annotations

import json
from typing import Any

from pycrdt import Doc, Map

from plinth.errors import Fault
from plinth.ids import short_id

ENTITIES = "entities"
SECTIONS = "sections"


def _plain(value: Any) -> Any:
    """Yjs numbers are floats: integral ones come back as ints (the schemas expect ints)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _sorted(nodes: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(nodes.items(), key=lambda kv: (float(kv[1].get("pos") or 0), kv[0]))


def to_definition(doc: Doc) -> tuple[dict[str, Any], list[Fault]]:
    """The definition this doc holds, and faults the conversion itself found (duplicate names)."""
    faults: list[Fault] = []
    entities: dict[str, Any] = {}
    raw = doc.get(ENTITIES, type=Map).to_py() or {}
    for eid, ent in _sorted(raw):
        name = str(ent.get("name") or "")
        if name in entities:
            faults.append(Fault(f"entities.{name}", f"two entities are named {name!r}",
                                "duplicate_name"))
            continue
        body: dict[str, Any] = {"id": eid, **_plain(ent.get("attrs") or {})}
        fields: dict[str, Any] = {}
        for fid, fld in _sorted(ent.get("fields") or {}):
            fname = str(fld.get("name") or "")
            if fname in fields:
                faults.append(Fault(f"entities.{name}.fields.{fname}",
                                    f"two fields are named {fname!r}", "duplicate_name"))
                continue
            fields[fname] = {"id": fid, **_plain(fld.get("attrs") or {})}
        body["fields"] = fields
        entities[name] = body
    definition: dict[str, Any] = {}
    if entities:
        definition[ENTITIES] = entities
    for section, text in (doc.get(SECTIONS, type=Map).to_py() or {}).items():
        definition[section] = json.loads(text) if isinstance(text, str) else _plain(text)
    return definition, faults


def _set_attrs(target: Map, attrs: dict[str, Any]) -> None:
    for key in [k for k in target if k not in attrs]:
        del target[key]
    for key, value in attrs.items():
        if key not in target or _plain(target[key] if not isinstance(target[key], Map)
                                       else target[key].to_py()) != value:
            target[key] = value


def apply_definition(doc: Doc, definition: dict[str, Any], origin: Any = None) -> None:
    """Change the doc so it holds `definition`, touching only what differs (one transaction)."""
    entities = doc.get(ENTITIES, type=Map)
    sections = doc.get(SECTIONS, type=Map)
    with doc.transaction(origin=origin):
        wanted = definition.get(ENTITIES) or {}
        keep: set[str] = set()
        for epos, (ename, ebody) in enumerate(wanted.items()):
            eid = str(ebody.get("id") or short_id("ent"))
            keep.add(eid)
            attrs = {k: v for k, v in ebody.items() if k not in ("id", "fields")}
            fields = ebody.get("fields") or {}
            if eid not in entities:
                entities[eid] = Map({
                    "name": ename, "pos": epos, "attrs": Map(attrs),
                    "fields": Map({
                        str(f.get("id") or short_id("fld")): Map({
                            "name": fname, "pos": fpos,
                            "attrs": Map({k: v for k, v in f.items() if k != "id"}),
                        })
                        for fpos, (fname, f) in enumerate(fields.items())
                    }),
                })
                continue
            ent = entities[eid]
            if ent.get("name") != ename:
                ent["name"] = ename
            if ent.get("pos") != epos:
                ent["pos"] = epos
            _set_attrs(ent["attrs"], attrs)
            fmap = ent["fields"]
            fkeep: set[str] = set()
            for fpos, (fname, f) in enumerate(fields.items()):
                fid = str(f.get("id") or short_id("fld"))
                fkeep.add(fid)
                fattrs = {k: v for k, v in f.items() if k != "id"}
                if fid not in fmap:
                    fmap[fid] = Map({"name": fname, "pos": fpos, "attrs": Map(fattrs)})
                    continue
                fld = fmap[fid]
                if fld.get("name") != fname:
                    fld["name"] = fname
                if fld.get("pos") != fpos:
                    fld["pos"] = fpos
                _set_attrs(fld["attrs"], fattrs)
            for fid in [k for k in fmap if k not in fkeep]:
                del fmap[fid]
        for eid in [k for k in entities if k not in keep]:
            del entities[eid]
        others = {k: json.dumps(v, sort_keys=True) for k, v in definition.items()
                  if k != ENTITIES}
        for key in [k for k in sections if k not in others]:
            del sections[key]
        for key, text in others.items():
            if sections.get(key) != text:
                sections[key] = text
