"""Live validation re-checks only touched documents, yet finds exactly what full validation does."""

from __future__ import annotations

from pathlib import Path

from pycrdt import Doc, Map

from plinth.designer import shape
from plinth.designer.validation import LiveValidator
from plinth.metadata import definition as definitions
from plinth.metadata.files import read_folder

DEMO = Path(__file__).parents[2] / "src" / "plinth" / "demo" / "claims"


def full(doc: Doc) -> list[tuple[str, str]]:
    definition, faults = shape.to_definition(doc)
    faults = faults or definitions.validate(definition)
    return [(f.path, f.code) for f in faults]


def live(validator: LiveValidator, doc: Doc) -> list[tuple[str, str]]:
    return [(f.path, f.code) for f in validator.run(doc)[1]]


def entity(doc: Doc, name: str) -> Map:
    ents = doc.get("entities", type=Map)
    return next(ents[k] for k in ents if ents[k]["name"] == name)


def test_incremental_validation_matches_full_validation_edit_by_edit() -> None:
    doc = Doc()
    demo = read_folder(DEMO)[1]
    shape.apply_definition(doc, demo)
    assert shape.to_definition(doc) == (demo, [])  # the round trip keeps every document
    validator = LiveValidator()
    validator.watch(doc)
    assert live(validator, doc) == full(doc) == []
    pages = doc.get("pages", type=Map)
    workflows = doc.get("workflows", type=Map)
    claim = entity(doc, "claim")

    def edits():  # each edit, then what it should re-check
        # a prop of one component: one page re-checked (schema + semantics), nothing else
        pages["claims"]["components"]["heading"]["attrs"]["props"]["text"] = "All claims"
        yield 2
        # a field a page's table shows is renamed: entity + every page reading entities
        fields = claim["fields"]
        fid = next(k for k in fields if fields[k]["name"] == "currency")
        fields[fid]["name"] = "money"
        yield None
        fields[fid]["name"] = "currency"
        yield None
        # a component of an unknown kind; then a schema fault in another page
        pages["claims"]["components"]["heading"]["attrs"]["kind"] = "no_such_kind"
        yield None
        pages["claim_detail"]["attrs"]["title"] = ""
        yield None
        pages["claim_detail"]["attrs"]["title"] = "Claim"
        pages["claims"]["components"]["heading"]["attrs"]["kind"] = "text"
        yield None
        # two pages on one path; a workflow node goes; a page goes
        pages["claims"]["attrs"]["path"] = "/claims/new"
        yield None
        nodes = workflows["claims_process"]["nodes"]
        del nodes["facts"]
        yield None
        del pages["task_inbox"]
        yield None
        # an entity by a duplicate name: a conversion fault
        entity(doc, "payout")["name"] = "claim"
        yield None

    for expected in edits():
        assert live(validator, doc) == full(doc)
        if expected is not None:
            assert validator.rechecked == expected


def test_old_shape_sections_still_read_and_apply_moves_them() -> None:
    import json

    doc = Doc()
    demo = read_folder(DEMO)[1]
    sections = doc.get("sections", type=Map)
    sections["pages"] = json.dumps(demo["pages"])
    assert shape.needs_migration(doc)
    assert shape.to_definition(doc)[0]["pages"] == demo["pages"]
    shape.apply_definition(doc, shape.to_definition(doc)[0])
    assert not shape.needs_migration(doc)
    assert shape.to_definition(doc)[0]["pages"] == demo["pages"]


def test_a_shape_no_editor_makes_is_a_diagnostic_not_a_crash() -> None:
    doc = Doc()
    validator = LiveValidator()
    validator.watch(doc)
    entities = doc.get("entities", type=Map)
    entities["ent_x"] = Map({"name": "x", "pos": 0, "attrs": Map(), "fields": "not a map"})
    doc.get("pages", type=Map)["home"] = 42
    faults = validator.run(doc)[1]
    assert {(f.path, f.code) for f in faults} == {
        ("entities.ent_x", "shape"),
        ("pages.home", "type"),
    }
