"""Export/import of an app as a folder of YAML files that diff well in git.

    app.yaml                 the app's name, description and document order
    entities/claim.yaml      one file per document, keys in their stored order

The round trip is exact: importing an export yields the same definition, byte for byte in its
canonical JSON, so the same content hash.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from plinth.errors import Fault, ValidationFailed
from plinth.metadata import kinds

FORMAT = 1


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    # Short lists of scalars (enum values, index fields) read best on one line.
    flow = all(isinstance(v, str | int | float | bool) for v in value) and len(str(value)) < 80
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)


def dump_yaml(value: Any) -> str:
    return yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )


def _plain(value: Any) -> Any:
    """YAML reads unquoted dates as dates; a definition holds them as ISO strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def to_files(app: dict[str, Any], definition: dict[str, Any]) -> dict[str, str]:
    """The files of an export: relative path → YAML text."""
    files: dict[str, str] = {}
    order: dict[str, list[str]] = {}
    for section, docs in definition.items():
        order[section] = list(docs)
        for name, doc in docs.items():
            files[f"{section}/{name}.yaml"] = dump_yaml(doc)
    head = {
        "plinth": FORMAT,
        "app": app["slug"],
        "name": app["name"],
        "description": app.get("description", ""),
        "documents": order,
    }
    files["app.yaml"] = dump_yaml(head)
    return dict(sorted(files.items()))


def write_folder(folder: Path, files: dict[str, str]) -> None:
    """Write an export, removing YAML files of documents that no longer exist."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*/*.yaml"):
        if stale.relative_to(folder).as_posix() not in files:
            stale.unlink()
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def read_folder(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(app head, definition) from an exported folder; faults name the file."""
    head_path = folder / "app.yaml"
    if not head_path.is_file():
        raise ValidationFailed.of(
            [Fault("app.yaml", f"no app.yaml in {folder}", "missing")], "export folder"
        )
    head = _load(head_path, "app.yaml")
    if not isinstance(head, dict) or head.get("plinth") != FORMAT or "app" not in head:
        raise ValidationFailed.of(
            [Fault("app.yaml", "not a Plinth app export (format 1)")], "export folder"
        )
    order: dict[str, list[str]] = head.get("documents") or {}
    faults: list[Fault] = []
    definition: dict[str, Any] = {}
    for section_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        section = section_dir.name
        if section.startswith("."):
            continue
        if kinds.by_section(section) is None:
            faults.append(
                Fault(section, f"unknown document kind folder {section!r}", "unknown_kind")
            )
            continue
        docs = {p.stem: _load(p, f"{section}/{p.name}") for p in section_dir.glob("*.yaml")}
        wanted = [n for n in order.get(section, []) if n in docs]
        definition[section] = {n: docs[n] for n in wanted + sorted(set(docs) - set(wanted))}
    if faults:
        raise ValidationFailed.of(faults, "export folder")
    sections = list(order) + [s for s in definition if s not in order]
    return head, {s: definition[s] for s in sections if s in definition}


def _load(path: Path, rel: str) -> Any:
    try:
        return _plain(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ValidationFailed.of(
            [Fault(rel, f"not valid YAML{where}: {exc}", "yaml")], "export folder"
        ) from exc
