"""Residual → filter AST: pure translation, checked against real Cedar partial evaluation."""

from __future__ import annotations

import cedarpy
import pytest

from plinth.governance.residual import Untranslatable, residuals_to_filter, translate

RES = {"unknown": [{"Value": "resource"}]}


def attr(name: str) -> dict:
    return {".": {"left": RES, "attr": name}}


def test_comparisons_and_flips() -> None:
    assert translate({"==": {"left": attr("country"), "right": {"Value": "FR"}}}) == {
        "field": "country",
        "op": "eq",
        "value": "FR",
    }
    # literal on the left flips the operator: 10 < amount  ==  amount > 10
    assert translate({"<": {"left": {"Value": 10}, "right": attr("amount")}}) == {
        "field": "amount",
        "op": "gt",
        "value": 10,
    }


def test_constants_fold_away() -> None:
    node = {
        "&&": {"left": {"Value": True}, "right": {"==": {"left": attr("a"), "right": {"Value": 1}}}}
    }
    assert translate(node) == {"field": "a", "op": "eq", "value": 1}
    eq = {"==": {"left": attr("a"), "right": {"Value": 1}}}
    assert translate({"||": {"left": {"Value": True}, "right": eq}}) is True


def test_set_membership_like_and_has() -> None:
    node = {
        "contains": {"left": {"Set": [{"Value": "a"}, {"Value": "b"}]}, "right": attr("status")}
    }
    assert translate(node) == {"field": "status", "op": "in", "value": ["a", "b"]}
    like = {"like": {"left": attr("code"), "pattern": [{"Literal": "FR-"}, "Wildcard"]}}
    assert translate(like) == {"field": "code", "op": "startswith", "value": "FR-"}
    assert translate({"has": {"left": RES, "attr": "x"}}) == {
        "not": {"field": "x", "op": "isnull", "value": True}
    }


def test_untranslatable_raises() -> None:
    with pytest.raises(Untranslatable):
        translate({"+": {"left": attr("a"), "right": {"Value": 1}}})
    with pytest.raises(Untranslatable):
        translate({"like": {"left": attr("a"), "pattern": ["Wildcard", {"Literal": "x"}]}})


POLICIES = """
permit(principal in Role::"analyst", action == Action::"data.read", resource)
  when { resource.country == principal.country };
permit(principal in Role::"analyst", action == Action::"data.read", resource)
  when { resource.status == "open" && resource.amount <= 100 };
forbid(principal, action == Action::"data.read", resource)
  when { resource has sealed && resource.sealed };
"""


def _residuals(roles: list[str]) -> dict:
    ents = [
        {
            "uid": {"type": "User", "id": "u"},
            "attrs": {"country": "FR"},
            "parents": [{"type": "Role", "id": r} for r in roles],
        }
    ]
    req = {"principal": 'User::"u"', "action": 'Action::"data.read"', "context": {}}
    return cedarpy.is_authorized_partial(req, POLICIES, ents).residuals or {}


def test_real_residuals_become_permit_and_not_forbid() -> None:
    got = residuals_to_filter(_residuals(["analyst"]))
    assert got == {
        "and": [
            {
                "or": [
                    {"field": "country", "op": "eq", "value": "FR"},
                    {
                        "and": [
                            {"field": "status", "op": "eq", "value": "open"},
                            {"field": "amount", "op": "lte", "value": 100},
                        ]
                    },
                ]
            },
            {
                "not": {
                    "and": [
                        {"not": {"field": "sealed", "op": "isnull", "value": True}},
                        {"field": "sealed", "op": "eq", "value": True},
                    ]
                }
            },
        ]
    }, got


def test_no_permit_means_deny_all() -> None:
    assert residuals_to_filter(_residuals(["viewer"])) == {"or": []}
