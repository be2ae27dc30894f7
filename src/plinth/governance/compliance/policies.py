"""The one place the packs look at policies: a textual check of Cedar documents.

The `policy` kind (Cedar text in `definition["policies"][name]["cedar"]`) belongs to
governance. Compliance only needs to know whether some forbid/permit statement names an
entity, and to propose one that restricts reads; when governance offers a structured way to
ask "which policies constrain reads of entity X", these two functions are what changes.
"""

from __future__ import annotations

import re
from typing import Any


def policy_mentions(policies: dict[str, Any], entity: str) -> bool:
    """Whether a policy document forbids or permits something on `entity` (textual check:
    the Cedar policy kind belongs to governance; this only looks for a statement naming it)."""
    word = re.compile(rf"\b{re.escape(entity)}\b")
    for doc in policies.values():
        text = doc.get("cedar", "") if isinstance(doc, dict) else ""
        text = re.sub(r"//[^\n]*", "", str(text))  # a comment naming the entity restricts nothing
        for statement in re.split(r";", text):
            if re.search(r"\b(forbid|permit)\b", statement) and word.search(statement):
                return True
    return False


def restricting_policy(name: str) -> dict[str, Any]:
    """A policy document letting only owners and the privacy group read `name` records."""
    return {
        "cedar": (
            f"// Added by plinth compliance fix: {name} holds sensitive personal data;\n"
            f"// widen it to the teams that need it (e.g. a Group) before publishing.\n"
            f'forbid (principal, action == Action::"data.read", resource is {name})\n'
            f'unless {{ principal in Role::"owner" || principal in Group::"privacy" }};\n'
        )
    }
