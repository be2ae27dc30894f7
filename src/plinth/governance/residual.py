"""Translate Cedar partial-evaluation residuals (JSON EST) into the runtime's filter AST.

The record is the unknown: `resource.field <op> value` becomes `{"field", "op", "value"}`.
Anything else (arithmetic, entity hierarchy on the record, extension calls) is untranslatable
and raises `Untranslatable`, so the caller can fall back to per-row checks.
"""

from __future__ import annotations

from typing import Any

from plinth.governance.access import DENY_ALL as ACCESS_DENY_ALL

Filter = dict[str, Any]
DENY_ALL: Filter = ACCESS_DENY_ALL
ALLOW_ALL: Filter = {"and": []}

_OPS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_FLIP = {"eq": "eq", "ne": "ne", "lt": "gt", "lte": "gte", "gt": "lt", "gte": "lte"}


class Untranslatable(ValueError):
    """A residual expression with no filter equivalent."""


def _is_unknown_resource(node: Any) -> bool:
    return isinstance(node, dict) and "unknown" in node


def _field(node: Any) -> str | None:
    """`resource.name` on the unknown record, else None."""
    if isinstance(node, dict) and "." in node:
        inner = node["."]
        if _is_unknown_resource(inner.get("left")):
            return str(inner["attr"])
    return None


def _value(node: Any) -> Any:
    """A literal (Value / Set of Values), else raise."""
    if isinstance(node, dict) and "Value" in node:
        value = node["Value"]
        if isinstance(value, dict) and "__entity" in value:
            return value["__entity"]["id"]
        return value
    if isinstance(node, dict) and "Set" in node:
        return [_value(item) for item in node["Set"]]
    raise Untranslatable(f"not a literal: {node!r}")


def translate(node: Any, entity: str | None = None) -> Filter | bool:
    """Residual expression → filter AST, or True/False when it is a constant.

    `entity` is the entity type being listed, which settles `resource is T` tests.
    """
    if not isinstance(node, dict) or len(node) != 1:
        raise Untranslatable(f"unexpected node {node!r}")
    ((key, body),) = node.items()
    if key == "Value":
        if isinstance(body, bool):
            return body
        raise Untranslatable("non-boolean literal in condition")
    if key in ("&&", "||"):
        left, right = translate(body["left"], entity), translate(body["right"], entity)
        return _combine("and" if key == "&&" else "or", [left, right])
    if key == "!":
        inner = translate(body["arg"], entity)
        if isinstance(inner, bool):
            return not inner
        return {"not": inner}
    if key == "." and _field(node) is not None:  # a boolean field used as a condition
        return {"field": body["attr"], "op": "eq", "value": True}
    if key in _OPS:
        return _comparison(_OPS[key], body["left"], body["right"])
    if key == "is" and _is_unknown_resource(body.get("left")) and entity is not None:
        return bool(body.get("entity_type") == entity and "in" not in body)
    if key == "has":
        name = body["attr"]
        if _is_unknown_resource(body["left"]):
            return {"not": {"field": name, "op": "isnull", "value": True}}
    if key == "contains":
        # [a, b].contains(resource.x) → x in [...];  resource.tags.contains(v) → tags contains v
        name = _field(body["right"])
        if name is not None:
            return {"field": name, "op": "in", "value": _value(body["left"])}
        name = _field(body["left"])
        if name is not None:
            return {"field": name, "op": "contains", "value": _value(body["right"])}
    if key == "like":
        name = _field(body["left"])
        pattern = body.get("pattern")
        if name is not None and isinstance(pattern, list):
            literal = _like_prefix(pattern)
            if literal is not None:
                return {"field": name, "op": "startswith", "value": literal}
    if key == "if-then-else":
        cond, then, other = (translate(body[k], entity) for k in ("if", "then", "else"))
        return _combine(
            "or", [_combine("and", [cond, then]), _combine("and", [_negate(cond), other])]
        )
    raise Untranslatable(f"no filter for Cedar operator {key!r}")


def _like_prefix(pattern: list[Any]) -> str | None:
    # Only "literal*" maps to startswith; other wildcards need per-row checks.
    if not pattern or pattern[-1] != "Wildcard":
        return None
    parts = pattern[:-1]
    if not all(isinstance(p, dict) and "Literal" in p for p in parts):
        return None
    return "".join(p["Literal"] for p in parts)


def _comparison(op: str, left: Any, right: Any) -> Filter | bool:
    name = _field(left)
    if name is not None:
        return {"field": name, "op": op, "value": _value(right)}
    name = _field(right)
    if name is not None:
        return {"field": name, "op": _FLIP[op], "value": _value(left)}
    raise Untranslatable("comparison without a record field")


def _negate(node: Filter | bool) -> Filter | bool:
    return (not node) if isinstance(node, bool) else {"not": node}


def _combine(op: str, parts: list[Filter | bool]) -> Filter | bool:
    """and/or with constant folding: True/False absorb or vanish."""
    absorbing, neutral = (False, True) if op == "and" else (True, False)
    kept: list[Filter] = []
    for part in parts:
        if isinstance(part, bool):
            if part == absorbing:
                return absorbing
            continue
        if op in part and isinstance(part[op], list):
            kept.extend(part[op])  # flatten nested and/and, or/or
        else:
            kept.append(part)
    if not kept:
        return neutral
    return kept[0] if len(kept) == 1 else {op: kept}


def policy_condition(policy: dict[str, Any], entity: str | None = None) -> Filter | bool:
    """The condition of one residual policy (all its when/unless clauses conjoined)."""
    parts: list[Filter | bool] = []
    for clause in policy.get("conditions", []):
        cond = translate(clause["body"], entity)
        parts.append(cond if clause.get("kind") == "when" else _negate(cond))
    for scope in ("principal", "action", "resource"):
        if policy.get(scope, {}).get("op", "All") != "All":
            raise Untranslatable(f"residual still constrains {scope}")
    return _combine("and", parts)


def residuals_to_filter(
    residuals: dict[str, dict[str, Any]], entity: str | None = None
) -> Filter | None:
    """Rows allowed = any permit residual holds and no forbid residual holds.

    Returns None when every row is allowed and DENY_ALL when none can be.
    """
    permits: list[Filter | bool] = []
    forbids: list[Filter | bool] = []
    # Sorted by policy id: Cedar returns residuals in no fixed order, and the same policies
    # must always give the same SQL (plan caching, readable logs, stable tests).
    for _id, policy in sorted(residuals.items()):
        side = permits if policy["effect"] == "permit" else forbids
        side.append(policy_condition(policy, entity))
    allowed = _combine("and", [_combine("or", permits), _negate(_combine("or", forbids))])
    if allowed is True:
        return None
    if allowed is False:
        return dict(DENY_ALL)
    return allowed
