"""The CRDT shape of a draft and its conversion to and from the metadata definition format.

Shaped for concurrent merges (see the issue's pitfalls):

    entities:  Map id -> Map{name, pos, attrs: Map, fields: Map id -> Map{name, pos, attrs: Map}}
    pages:     Map name -> Map{pos, attrs: Map, components: Map id -> Map{pos, attrs: Map}}
               (a component's `props` is itself a Map, so two people editing two props of
               one component both keep theirs; `parent` and `order` are plain attributes)
    workflows: Map name -> Map{pos, attrs: Map, nodes: Map name -> Map{pos, attrs: Map}}
    policies:  Map name -> Map{pos, attrs: Map}
    sections:  Map section -> JSON text (any other section, edited whole)

Entities, fields and components are keyed by their stable id, never by position, so two people
adding one each both keep theirs; order is a `pos` number (and a component's `order`), so a
move changes one key instead of a delete + insert (which duplicates under concurrency). A
node's nested maps are created together with the node. Attribute values are plain JSON, last
writer wins per attribute.
"""

from __future__ import annotations

import json
from typing import Any

from pycrdt import Doc, Map

from plinth.errors import Fault
from plinth.ids import short_id

ENTITIES = "entities"
SECTIONS = "sections"
# Sections kept as structured maps: section -> (member map key or None, nested-map attributes
# of a member). Documents are keyed by name; members by the key the definition uses.
DOCUMENTS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "pages": ("components", ("props",)),
    "workflows": ("nodes", ()),
    "policies": (None, ()),
}
ROOTS = (ENTITIES, *DOCUMENTS, SECTIONS)


def _plain(value: Any) -> Any:
    """Yjs numbers are floats: integral ones come back as ints (the schemas expect ints)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def plain_of(value: Any) -> Any:
    """A CRDT value as plain JSON (through the JSON pycrdt writes, ~20x faster than to_py)."""
    return json.loads(str(value)) if isinstance(value, Map) else value


def _sorted(nodes: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    def pos(kv: tuple[str, Any]) -> tuple[float, str]:
        value = kv[1].get("pos") if isinstance(kv[1], dict) else None
        return (float(value) if isinstance(value, int | float) else 0.0, kv[0])

    return sorted(nodes.items(), key=pos)


def entity_body(eid: str, ent: dict[str, Any], faults: list[Fault]) -> tuple[str, dict[str, Any]]:
    """(name, definition body) of one entity map (as `to_py()` gives it)."""
    name = str(ent.get("name") or "")
    body: dict[str, Any] = {"id": eid, **_plain(ent.get("attrs") or {})}
    fields: dict[str, Any] = {}
    for fid, fld in _sorted(ent.get("fields") or {}):
        fname = str(fld.get("name") or "")
        if fname in fields:
            faults.append(
                Fault(
                    f"entities.{name}.fields.{fname}",
                    f"two fields are named {fname!r}",
                    "duplicate_name",
                )
            )
            continue
        fields[fname] = {"id": fid, **_plain(fld.get("attrs") or {})}
    body["fields"] = fields
    return name, body


def document_body(section: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The definition body of one structured document (pages, workflows, policies)."""
    members_key, _ = DOCUMENTS[section]
    body: dict[str, Any] = _plain(raw.get("attrs") or {})
    if members_key is not None:
        body[members_key] = {
            key: _plain(member.get("attrs") or {})
            for key, member in _sorted(raw.get(members_key) or {})
        }
    return body


def to_definition(doc: Doc) -> tuple[dict[str, Any], list[Fault]]:
    """The definition this doc holds, and faults the conversion itself found (duplicate names)."""
    faults: list[Fault] = []
    entities: dict[str, Any] = {}
    for eid, ent in _sorted(plain_of(doc.get(ENTITIES, type=Map)) or {}):
        name, body = entity_body(eid, ent, faults)
        if name in entities:
            faults.append(
                Fault(f"entities.{name}", f"two entities are named {name!r}", "duplicate_name")
            )
            continue
        entities[name] = body
    definition: dict[str, Any] = {}
    if entities:
        definition[ENTITIES] = entities
    for section in DOCUMENTS:
        docs = {
            name: document_body(section, raw)
            for name, raw in _sorted(plain_of(doc.get(section, type=Map)) or {})
        }
        if docs:
            definition[section] = docs
    for section, text in (plain_of(doc.get(SECTIONS, type=Map)) or {}).items():
        if section not in definition:
            definition[section] = json.loads(text) if isinstance(text, str) else _plain(text)
    return definition, faults


def _value(value: Any, nested: bool) -> Any:
    return Map(value) if nested and isinstance(value, dict) else value


def _same(current: Any, value: Any) -> bool:
    current = current.to_py() if isinstance(current, Map) else current
    return bool(_plain(current) == value)


def _set_attrs(target: Map, attrs: dict[str, Any], nested: tuple[str, ...] = ()) -> None:
    """Make `target` hold `attrs`, touching only what differs (nested ones stay Maps)."""
    for key in set(target.keys()) - attrs.keys():
        del target[key]
    for key, value in attrs.items():
        want_map = key in nested and isinstance(value, dict)
        if key in target and want_map and isinstance(target[key], Map):
            _set_attrs(target[key], value)
        elif (
            key not in target
            or not _same(target[key], value)
            or want_map != isinstance(target[key], Map)
        ):
            target[key] = _value(value, want_map)


def _new_member(pos: int, attrs: dict[str, Any], nested: tuple[str, ...]) -> Map:
    return Map({"pos": pos, "attrs": Map({k: _value(v, k in nested) for k, v in attrs.items()})})


def _apply_documents(root: Map, section: str, docs: dict[str, Any]) -> None:
    members_key, nested = DOCUMENTS[section]
    for pos, (name, body) in enumerate(docs.items()):
        body = body if isinstance(body, dict) else {}
        attrs = {k: v for k, v in body.items() if k != members_key}
        members = body.get(members_key) if members_key else None
        members = members if isinstance(members, dict) else {}
        if name not in root:
            fresh: dict[str, Any] = {"pos": pos, "attrs": Map(attrs)}
            if members_key is not None:
                fresh[members_key] = Map(
                    {
                        key: _new_member(mpos, m if isinstance(m, dict) else {}, nested)
                        for mpos, (key, m) in enumerate(members.items())
                    }
                )
            root[name] = Map(fresh)
            continue
        target = root[name]
        if target.get("pos") != pos:
            target["pos"] = pos
        _set_attrs(target["attrs"], attrs)
        if members_key is None:
            continue
        if members_key not in target:
            target[members_key] = Map()
        mmap = target[members_key]
        for mpos, (key, member) in enumerate(members.items()):
            member = member if isinstance(member, dict) else {}
            if key not in mmap:
                mmap[key] = _new_member(mpos, member, nested)
                continue
            _set_attrs(mmap[key]["attrs"], member, nested)
        for key in set(mmap.keys()) - members.keys():
            del mmap[key]
    for name in set(root.keys()) - docs.keys():
        del root[name]


def apply_definition(doc: Doc, definition: dict[str, Any], origin: Any = None) -> None:
    """Change the doc so it holds `definition`, touching only what differs (one transaction)."""
    entities = doc.get(ENTITIES, type=Map)
    sections = doc.get(SECTIONS, type=Map)
    structured = {section: doc.get(section, type=Map) for section in DOCUMENTS}
    with doc.transaction(origin=origin):
        wanted = definition.get(ENTITIES) or {}
        keep: set[str] = set()
        for epos, (ename, ebody) in enumerate(wanted.items()):
            eid = str(ebody.get("id") or short_id("ent"))
            keep.add(eid)
            attrs = {k: v for k, v in ebody.items() if k not in ("id", "fields")}
            fields = ebody.get("fields") or {}
            if eid not in entities:
                entities[eid] = Map(
                    {
                        "name": ename,
                        "pos": epos,
                        "attrs": Map(attrs),
                        "fields": Map(
                            {
                                str(f.get("id") or short_id("fld")): Map(
                                    {
                                        "name": fname,
                                        "pos": fpos,
                                        "attrs": Map({k: v for k, v in f.items() if k != "id"}),
                                    }
                                )
                                for fpos, (fname, f) in enumerate(fields.items())
                            }
                        ),
                    }
                )
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
        for section, root in structured.items():
            _apply_documents(root, section, definition.get(section) or {})
        others = {
            k: json.dumps(v, sort_keys=True)
            for k, v in definition.items()
            if k != ENTITIES and k not in DOCUMENTS
        }
        for key in [k for k in sections if k not in others]:
            del sections[key]  # includes sections of an older shape, now structured
        for key, text in others.items():
            if sections.get(key) != text:
                sections[key] = text


def needs_migration(doc: Doc) -> bool:
    """True for a doc of the older shape (pages, workflows, policies as JSON text)."""
    return any(key in DOCUMENTS for key in doc.get(SECTIONS, type=Map))
