"""The `workflow` document kind and its publish-time checks (graph, CEL, references)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plinth.errors import Fault
from plinth.jsonschema import compile_schema
from plinth.metadata.kinds import Kind, load_schema, register
from plinth.workflows import schedule, steps
from plinth.workflows.references import check_references
from plinth.workflows.steps.user_task import BUILT_IN_ROLES


def check_workflow(name: str, doc: dict[str, Any], definition: dict[str, Any]) -> list[Fault]:
    """Reachability, join/split pairing, CEL types and references, each fault with its path."""
    base = f"workflows.{name}"
    nodes: dict[str, Any] = doc.get("nodes", {})
    found: list[Fault] = []
    if doc.get("first") not in nodes:
        found.append(Fault(f"{base}.first", f"no node named {doc.get('first')!r}", "unknown_node"))
    found += _check_run_as(doc.get("run_as"), f"{base}.run_as", definition)
    if doc.get("key"):
        found += steps.check(doc["key"], f"{base}.key")
    for i, start in enumerate(doc.get("start", [])):
        spath = f"{base}.start[{i}]"
        if start["type"] == "record":
            entity = start.get("entity")
            if entity not in definition.get("entities", {}):
                found.append(
                    Fault(f"{spath}.entity", f"no entity named {entity!r}", "unknown_reference")
                )
            if start.get("condition"):
                found += steps.check(start["condition"], f"{spath}.condition", "BOOL")
        if start["type"] == "schedule":
            found += schedule.check(start, spath)
        if start["type"] == "webhook" and start.get("connector"):
            connector = definition.get("connectors", {}).get(start["connector"])
            if connector is None or connector.get("kind") != "webhook_in":
                found.append(
                    Fault(
                        f"{spath}.connector",
                        f"no webhook_in connector named {start['connector']!r} in this app",
                        "unknown_reference",
                    )
                )
    for node, spec in nodes.items():
        path = f"{base}.nodes.{node}"
        step = steps.get(spec["type"])
        found += step.check(spec, path, definition)
        if "run_as" in spec:
            if spec["type"] != "service_task":
                found.append(
                    Fault(f"{path}.run_as", "only a service task acts as a role", "not_allowed")
                )
            found += _check_run_as(spec["run_as"], f"{path}.run_as", definition)
        for target in step.targets(spec):
            if target not in nodes:
                found.append(
                    Fault(path, f"leads to {target!r}, which is not a node", "unknown_node")
                )
        if spec["type"] not in ("end",) and not step.targets(spec):
            found.append(Fault(f"{path}.next", "this node leads nowhere; add `next`", "required"))
    found += _check_reachable(base, doc, nodes)
    found += _check_joins(base, nodes)
    return found


def _check_run_as(run_as: Any, path: str, definition: dict[str, Any]) -> list[Fault]:
    """`run_as` names a role that exists (built in, or declared by the app)."""
    if not isinstance(run_as, dict):
        return []
    role = run_as.get("role")
    if role and role not in set(definition.get("roles", {})) | BUILT_IN_ROLES:
        return [Fault(f"{path}.role", f"no role named {role!r}", "unknown_reference")]
    return []


def _check_reachable(base: str, doc: dict[str, Any], nodes: dict[str, Any]) -> list[Fault]:
    seen: set[str] = set()
    todo = [doc.get("first")]
    while todo:
        node = todo.pop()
        if node in seen or node not in nodes:
            continue
        seen.add(node)
        todo += steps.get(nodes[node]["type"]).targets(nodes[node])
    return [
        Fault(f"{base}.nodes.{n}", f"node {n!r} cannot be reached from `first`", "unreachable")
        for n in nodes
        if n not in seen
    ]


def _check_joins(base: str, nodes: dict[str, Any]) -> list[Fault]:
    found: list[Fault] = []
    joined: dict[str, str] = {}
    for node, spec in nodes.items():
        if spec["type"] != "join" or not spec.get("split"):
            continue
        split = spec["split"]
        if nodes.get(split, {}).get("type") != "parallel":
            found.append(
                Fault(
                    f"{base}.nodes.{node}.split",
                    f"{split!r} is not a parallel split",
                    "join_mismatch",
                )
            )
        elif split in joined:
            found.append(
                Fault(
                    f"{base}.nodes.{node}.split",
                    f"split {split!r} is already joined by {joined[split]!r}",
                    "join_mismatch",
                )
            )
        joined[split] = node
    for node, spec in nodes.items():
        if spec["type"] == "parallel" and node not in joined:
            found.append(
                Fault(
                    f"{base}.nodes.{node}", f"parallel split {node!r} has no join", "join_mismatch"
                )
            )
    return found


WORKFLOW = register(
    Kind(
        name="workflow",
        section="workflows",
        schema=load_schema(Path(__file__).with_name("workflow.schema.json")),
        id_prefix="wf",
        checks=[check_workflow, check_references],
    )
)


def _node_types_changed() -> None:
    """The node `type` enum of the workflow schema is generated from the registered types."""
    WORKFLOW.schema["$defs"]["node"]["properties"]["type"]["enum"] = steps.types()
    WORKFLOW.validator = compile_schema(WORKFLOW.schema)


steps.watch(_node_types_changed)
