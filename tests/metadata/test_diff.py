"""Diffs show what a person changed: key order of JSON objects is not a change (the co-editing
IDE rewrites documents in its own key order); the order of an entity's fields is."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import plinth.demo
from plinth.metadata import files
from plinth.metadata.diff import diff
from plinth.server.platform import Platform  # noqa: F401  (registers every kind)


def _demo() -> dict[str, Any]:
    _, definition = files.read_folder(Path(plinth.demo.__file__).parent / "claims")
    return definition


def _keys_reversed(value: Any) -> Any:
    """The same value with every object's keys in reverse order (lists as they were)."""
    if isinstance(value, dict):
        return {k: _keys_reversed(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_keys_reversed(v) for v in value]
    return value


def _fields_kept_in_order(old: dict[str, Any], new: dict[str, Any]) -> None:
    for name, entity in new["entities"].items():
        order = list(old["entities"][name]["fields"])
        entity["fields"] = {k: entity["fields"][k] for k in order if k in entity["fields"]} | {
            k: v for k, v in entity["fields"].items() if k not in order
        }


def test_an_ide_publish_that_added_a_field_and_changed_a_label_shows_just_that() -> None:
    old = _demo()
    new = _keys_reversed(copy.deepcopy(old))
    _fields_kept_in_order(old, new)
    new["entities"]["claim"]["fields"]["adjuster_note"] = {"type": "text"}
    new["entities"]["policy"]["fields"]["number"]["label"] = "Policy no."
    changes = diff(old, new)
    assert sorted((c["op"], c["path"]) for c in changes) == [
        ("changed", "entities.claim"),
        ("changed", "entities.policy"),
    ]
    inner = {c["path"]: c["changes"] for c in changes}
    assert inner["entities.claim"] == [
        {"op": "added", "path": "entities.claim.fields.adjuster_note", "member": "adjuster_note"}
    ]
    assert inner["entities.policy"] == [
        {
            "op": "changed",
            "path": "entities.policy.fields.number.label",
            "from": old["entities"]["policy"]["fields"]["number"]["label"],
            "to": "Policy no.",
        }
    ]


def test_moving_an_entitys_fields_is_a_reorder_and_list_order_is_content() -> None:
    old = _demo()
    new = copy.deepcopy(old)
    fields = new["entities"]["claim"]["fields"]
    new["entities"]["claim"]["fields"] = {"amount": fields["amount"]} | {
        k: v for k, v in fields.items() if k != "amount"
    }
    values = new["entities"]["claim"]["fields"]["status"]["values"]
    values.reverse()
    [claim] = diff(old, new)
    ops = [(c["op"], c["path"]) for c in claim["changes"]]
    assert ops == [
        ("changed", "entities.claim.fields.status.values"),
        ("reordered", "entities.claim.fields"),
    ]
    # Nothing changed at all: no change listed.
    assert diff(old, _keys_reversed(copy.deepcopy(old))) != []  # fields reversed: a reorder
    same = _keys_reversed(copy.deepcopy(old))
    _fields_kept_in_order(old, same)
    assert diff(old, same) == []
