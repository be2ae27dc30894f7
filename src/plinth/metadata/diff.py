"""A structured diff of two app definitions: documents and members added, removed, renamed
(matched on stable ids, so a rename is a rename) and changed, down to the attribute.

It reports what a person changed. The key order of a JSON object is not a change (an editor
that rebuilds a document, such as the co-editing IDE, may write keys in another order); only
the order of members a kind declares `ordered` (an entity's fields) is reported, as
`reordered`. The order of list items is kept as a change: in a list, order is content."""

from __future__ import annotations

from typing import Any

from plinth.metadata import kinds
from plinth.metadata.definition import Definition

Change = dict[str, Any]
_MISSING = object()


def _match(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """Pairs (old name, new name) matched by id, then by name; None where absent."""
    old_by_id = {v["id"]: k for k, v in old.items() if isinstance(v, dict) and "id" in v}
    pairs: list[tuple[str | None, str | None]] = []
    used: set[str] = set()
    for name, doc in new.items():
        ident = doc.get("id") if isinstance(doc, dict) else None
        if ident is not None and ident in old_by_id:
            pairs.append((old_by_id[ident], name))
            used.add(old_by_id[ident])
        elif name in old and name not in used and old[name].get("id") in (None, ident):
            pairs.append((name, name))
            used.add(name)
        else:
            pairs.append((None, name))
    pairs += [(name, None) for name in old if name not in used]
    return pairs


def _values(old: Any, new: Any, path: str, skip: set[str]) -> list[Change]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for key in [*old, *(k for k in new if k not in old)]:
            if key in skip:
                continue
            out += _values(old.get(key, _MISSING), new.get(key, _MISSING), f"{path}.{key}", set())
        return out
    if old is _MISSING:
        return [{"op": "added", "path": path, "to": new}]
    if new is _MISSING:
        return [{"op": "removed", "path": path, "from": old}]
    if old != new or type(old) is not type(new):
        return [{"op": "changed", "path": path, "from": old, "to": new}]
    return []


def _members(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str,
    keyed: dict[str, str],
    ordered: frozenset[str] = frozenset(),
) -> list[Change]:
    """Changes inside one document: keyed maps member by member, the rest attribute-wise."""
    out = _values(old, new, path, skip=set(keyed) | {"id"})
    for key in keyed:
        old_members = old.get(key) or {}
        new_members = new.get(key) or {}
        for old_name, new_name in _match(old_members, new_members):
            if new_name is None:
                out.append(
                    {"op": "removed", "path": f"{path}.{key}.{old_name}", "member": old_name}
                )
                continue
            member_path = f"{path}.{key}.{new_name}"
            if old_name is None:
                out.append({"op": "added", "path": member_path, "member": new_name})
                continue
            inner = _values(old_members[old_name], new_members[new_name], member_path, {"id"})
            if old_name != new_name:
                out.append(
                    {
                        "op": "renamed",
                        "path": member_path,
                        "from": old_name,
                        "to": new_name,
                        "changes": inner,
                    }
                )
            else:
                out += inner
        if key in ordered:
            before, after = _order(old_members), _order(new_members)
            kept = set(before) & set(after)
            if [m for m in before if m in kept] != [m for m in after if m in kept]:
                out.append({"op": "reordered", "path": f"{path}.{key}"})
    return out


def _order(members: dict[str, Any]) -> list[Any]:
    """The members' order by identity (id, else name), so adding or removing a member, or
    renaming one, is not also a reorder."""
    return [m.get("id", k) if isinstance(m, dict) else k for k, m in members.items()]


def diff(old: Definition, new: Definition) -> list[Change]:
    """Document-level changes, each with the member/attribute changes inside it."""
    changes: list[Change] = []
    order = kinds.sections() + [s for s in {**old, **new} if kinds.by_section(s) is None]
    for section in order:
        kind = kinds.by_section(section)
        kind_name = kind.name if kind else section
        keyed = kind.keyed if kind else {}
        ordered = kind.ordered if kind else frozenset()
        old_docs = old.get(section) or {}
        new_docs = new.get(section) or {}
        for old_name, new_name in _match(old_docs, new_docs):
            if new_name is None:
                changes.append(
                    {
                        "op": "removed",
                        "kind": kind_name,
                        "name": old_name,
                        "path": f"{section}.{old_name}",
                    }
                )
            elif old_name is None:
                changes.append(
                    {
                        "op": "added",
                        "kind": kind_name,
                        "name": new_name,
                        "path": f"{section}.{new_name}",
                    }
                )
            else:
                path = f"{section}.{new_name}"
                inner = _members(old_docs[old_name], new_docs[new_name], path, keyed, ordered)
                if old_name != new_name:
                    changes.append(
                        {
                            "op": "renamed",
                            "kind": kind_name,
                            "name": new_name,
                            "from": old_name,
                            "path": path,
                            "changes": inner,
                        }
                    )
                elif inner:
                    changes.append(
                        {
                            "op": "changed",
                            "kind": kind_name,
                            "name": new_name,
                            "path": path,
                            "changes": inner,
                        }
                    )
    return changes
