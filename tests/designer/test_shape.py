"""Pages in the CRDT merge concurrent edits: a move and a prop edit of one component, two adds."""

from __future__ import annotations

from pycrdt import Doc, Map

from plinth.designer import shape

PAGE = {
    "pages": {
        "home": {
            "title": "Home",
            "path": "/",
            "components": {
                "root": {"kind": "stack", "parent": None, "order": 0},
                "box": {"kind": "stack", "parent": "root", "order": 1},
                "hello": {"kind": "text", "parent": "root", "order": 2, "props": {"text": "Hi"}},
            },
        }
    }
}


def test_concurrent_move_edit_and_adds_all_survive_the_merge() -> None:
    a, b = Doc(), Doc()
    shape.apply_definition(a, PAGE)
    b.apply_update(a.get_update())
    comps_a = a.get("pages", type=Map)["home"]["components"]
    comps_b = b.get("pages", type=Map)["home"]["components"]
    # A moves `hello` into `box` (parent/order keys only); B edits its text and adds a button
    comps_a["hello"]["attrs"]["parent"] = "box"
    comps_a["hello"]["attrs"]["order"] = 0
    comps_a["title"] = Map(
        {
            "pos": 9,
            "attrs": Map(
                {"kind": "text", "parent": "root", "order": 0.5, "props": Map({"text": "T"})}
            ),
        }
    )
    comps_b["hello"]["attrs"]["props"]["variant"] = "h1"
    comps_b["go"] = Map(
        {
            "pos": 9,
            "attrs": Map(
                {"kind": "button", "parent": "root", "order": 3, "props": Map({"label": "Go"})}
            ),
        }
    )
    a_state, b_state = a.get_state(), b.get_state()
    a_update, b_update = a.get_update(b_state), b.get_update(a_state)
    a.apply_update(b_update)
    b.apply_update(a_update)
    merged = shape.to_definition(a)[0]
    assert merged == shape.to_definition(b)[0]
    comps = merged["pages"]["home"]["components"]
    assert set(comps) == {"root", "box", "hello", "title", "go"}  # one `hello`, no copy
    assert comps["hello"] == {
        "kind": "text",
        "parent": "box",
        "order": 0,
        "props": {"text": "Hi", "variant": "h1"},
    }


def test_apply_definition_changes_only_what_differs() -> None:
    doc = Doc()
    shape.apply_definition(doc, PAGE)
    before = doc.get_state()
    shape.apply_definition(doc, PAGE)
    assert doc.get_update(before) == b"\x00\x00"
    moved = {
        "pages": {
            "home": {
                **PAGE["pages"]["home"],
                "components": {
                    **PAGE["pages"]["home"]["components"],
                    "hello": {"kind": "text", "parent": "box", "order": 0, "props": {"text": "Hi"}},
                },
            }
        }
    }
    shape.apply_definition(doc, moved)
    assert shape.to_definition(doc)[0] == moved
