"""Live validation of a draft room, re-checking only the documents updates touched.

Gives exactly what `shape.to_definition` + `definition.validate` give for the whole doc, but:

- a document is converted from the CRDT and schema-checked only when an update touched it
  (the room's deep observers name the touched top-level keys);
- a document's semantic checks (which read other documents) are re-run only when the document
  or a section they read changed; what each kind reads is declared in `READS` (a kind not
  listed there is re-checked whenever anything changes).

A 10k-component draft (50 pages of 200) re-validated in full on every update; now an edit of
one component re-checks one page (see bench/designer.py, "live validation").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pycrdt import Doc, Map

from plinth.designer import shape
from plinth.errors import Fault
from plinth.metadata import definition as definitions
from plinth.metadata import kinds

Unit = tuple[str, str]  # (root map of the doc, key in it)


def _digest(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class Converted:
    """One top-level entry of the doc, as definition documents."""

    pos: float
    docs: list[tuple[str, str, Any, str]]  # (section, name, body, digest)
    faults: list[Fault] = field(default_factory=list)
    section_type_error: bool = False


def _pages_reads(definition: dict[str, Any]) -> Any:
    """Page checks read entities, workflows, components, and the paths of other pages."""
    pages = definition.get("pages", {})
    return [sorted((n, p.get("path")) for n, p in pages.items() if isinstance(p, dict))]


# section -> (sections its semantic checks read, extra projection of the definition)
READS: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any]], Any] | None]] = {
    "entities": (("entities",), None),
    "pages": (("entities", "workflows", "components"), _pages_reads),
    "workflows": (("entities", "workflows", "roles", "plugins", "connectors"), None),
    "policies": (("entities",), None),  # each policy is checked alone against the schema
    "connectors": ((), None),  # each connector is checked alone against its kind
}


class LiveValidator:
    """Per-document caches of conversion, schema faults and semantic faults."""

    def __init__(self) -> None:
        self.units: dict[Unit, Converted] = {}
        self.dirty: set[Unit] | None = None  # None: everything
        self.schema: dict[tuple[str, str], tuple[str, list[Fault]]] = {}
        self.semantic: dict[tuple[str, str], tuple[str, list[Fault]]] = {}
        self._subs: list[Any] = []
        self.rechecked = 0  # documents schema- or semantically re-checked by the last run

    def watch(self, doc: Doc) -> list[Any]:
        """Observe `doc` so every change marks the top-level entry it is under."""
        self._subs = [
            doc.get(root, type=Map).observe_deep(partial(self._observe, root))
            for root in shape.ROOTS
        ]
        return self._subs

    def _observe(self, root: str, events: Any, *_: Any) -> None:
        for ev in events:
            if ev.path:
                self.touch(root, str(ev.path[0]))
            else:
                for key in ev.keys:
                    self.touch(root, str(key))

    def touch(self, root: str, key: str) -> None:
        if self.dirty is not None:
            self.dirty.add((root, key))

    def touch_all(self) -> None:
        self.dirty = None

    # -- conversion ---------------------------------------------------------------------------

    def _convert(self, root: str, key: str, raw: Any) -> Converted:
        """One entry as documents; a shape no editor makes becomes a fault, never an error."""
        try:
            return self._convert_entry(root, key, raw)
        except (AttributeError, TypeError, ValueError):
            return Converted(
                0,
                [],
                [
                    Fault(
                        f"{root}.{key}",
                        "this entry does not have the shape of a draft document",
                        "shape",
                    )
                ],
            )

    def _convert_entry(self, root: str, key: str, raw: Any) -> Converted:
        if root != shape.SECTIONS and not isinstance(raw, dict):
            return Converted(0, [], [Fault(f"{root}.{key}", "a document is a map", "type")])
        if root == shape.ENTITIES:
            faults: list[Fault] = []
            name, body = shape.entity_body(key, raw, faults)
            return Converted(_pos(raw), [("entities", name, body, _digest(body))], faults)
        if root == shape.SECTIONS:
            value = json.loads(raw) if isinstance(raw, str) else shape._plain(raw)
            if not isinstance(value, dict):
                return Converted(0, [(key, "", value, _digest(value))], section_type_error=True)
            return Converted(0, [(key, n, d, _digest(d)) for n, d in value.items()])
        body = shape.document_body(root, raw)
        return Converted(_pos(raw), [(root, key, body, _digest(body))])

    def _refresh(self, doc: Doc) -> None:
        if self.dirty is None:
            self.units.clear()
            for root in shape.ROOTS:
                for key, raw in (shape.plain_of(doc.get(root, type=Map)) or {}).items():
                    self.units[(root, key)] = self._convert(root, key, raw)
        else:
            for root, key in self.dirty:
                rmap = doc.get(root, type=Map)
                if key in rmap:
                    raw = shape.plain_of(rmap[key])
                    self.units[(root, key)] = self._convert(root, key, raw)
                else:
                    self.units.pop((root, key), None)
        self.dirty = set()

    # -- validation ---------------------------------------------------------------------------

    def run(self, doc: Doc) -> tuple[dict[str, Any], list[Fault]]:
        """The draft's definition and its faults (what full validation would find)."""
        self._refresh(doc)
        self.rechecked = 0
        conversion: list[Fault] = []
        digests: dict[tuple[str, str], str] = {}
        definition: dict[str, Any] = {}
        entities: dict[str, Any] = {}
        ordered = sorted(self.units.items(), key=lambda kv: (kv[1].pos, kv[0][1]))
        for (root, _key), unit in ordered:
            conversion += unit.faults
            if root != shape.ENTITIES:
                continue
            if not unit.docs:
                continue
            _, name, body, digest = unit.docs[0]
            if name in entities:
                conversion.append(
                    Fault(f"entities.{name}", f"two entities are named {name!r}", "duplicate_name")
                )
                continue
            entities[name] = body
            digests[("entities", name)] = digest
        if entities:
            definition["entities"] = entities
        for section in shape.DOCUMENTS:
            docs = {}
            for (root, _key), unit in ordered:
                if root == section and unit.docs:
                    _, name, body, digest = unit.docs[0]
                    docs[name] = body
                    digests[(section, name)] = digest
            if docs:
                definition[section] = docs
        for (root, key), unit in sorted(self.units.items(), key=lambda kv: kv[0][1]):
            if root != shape.SECTIONS or key in definition:
                continue
            if unit.section_type_error:
                definition[key] = unit.docs[0][2]  # not an object: `validate` says so
                continue
            definition[key] = {name: body for _, name, body, _ in unit.docs}
            for section, name, _, digest in unit.docs:
                digests[(section, name)] = digest
        if conversion:
            return definition, conversion
        for cache in (self.schema, self.semantic):
            for gone in [k for k in cache if k not in digests]:
                del cache[gone]
        return definition, self._faults(definition, digests)

    def _faults(
        self, definition: dict[str, Any], digests: dict[tuple[str, str], str]
    ) -> list[Fault]:
        """`definitions.validate`, with each document's two checks answered from the caches
        while neither the document nor (for the semantic check) what it reads changed."""
        signatures: dict[str, str] = {}

        def digest_of(section: str, name: str, body: Any) -> str:
            return digests.get((section, name)) or _digest(body)

        def schema(kind: kinds.Kind, section: str, name: str, body: Any) -> list[Fault]:
            digest = digest_of(section, name, body)
            cached = self.schema.get((section, name))
            if cached is None or cached[0] != digest:
                self.rechecked += 1
                cached = (digest, definitions.schema_check(kind, section, name, body))
                self.schema[(section, name)] = cached
            return cached[1]

        def semantic(
            kind: kinds.Kind, section: str, name: str, doc: Any, whole: dict[str, Any]
        ) -> list[Fault]:
            if not signatures:
                signatures.update(_signatures(whole, digests))
            key = f"{digest_of(section, name, doc)}:{signatures[section]}"
            cached = self.semantic.get((section, name))
            if cached is None or cached[0] != key:
                self.rechecked += 1
                cached = (key, definitions.semantic_check(kind, section, name, doc, whole))
                self.semantic[(section, name)] = cached
            return cached[1]

        return definitions.validate(definition, schema, semantic)


def _signatures(definition: dict[str, Any], digests: dict[tuple[str, str], str]) -> dict[str, str]:
    """Per section, a digest of everything its semantic checks read (`READS`)."""
    section_sigs = {
        s: _digest(sorted((n, digests.get((s, n)) or "") for n in docs))
        for s, docs in definition.items()
    }
    everything = _digest(sorted(section_sigs.items()))
    signatures: dict[str, str] = {}
    for section in definition:
        reads = READS.get(section)
        if reads is None:
            signatures[section] = everything
            continue
        sections, extra = reads
        signatures[section] = _digest(
            [
                [(s, s in definition, section_sigs.get(s)) for s in sections],
                extra(definition) if extra else None,
            ]
        )
    return signatures


def _pos(raw: Any) -> float:
    value = raw.get("pos") if isinstance(raw, dict) else None
    return float(value) if isinstance(value, int | float) else 0.0
