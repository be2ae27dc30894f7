"""Data classes: suggestions inferred from field names and types, and masking.

`mask` is the pure function the runtime calls when a response carries a `masked` field the
caller may not see in full; suggestions are warnings at publish, never applied silently.
"""

from __future__ import annotations

import re
from typing import Any

# (pattern on the field name, suggested class); first match wins, so specific before general.
_SUGGESTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), cls)
    for p, cls in [
        (r"(^|_)(cvv|cvc|cvv2|cvc2|cid|pin|pin_block|track_?data|track[12])($|_)", "pci.sad"),
        (r"(^|_)(card_?number|pan|credit_?card|cc_?number)($|_)", "pci.pan"),
        (r"(^|_)(password|passwd|secret|api_?key|token|private_?key)($|_)", "credential"),
        (
            r"(^|_)(health|medical|diagnosis|religion|ethnic|ethnicity|race|sexual|biometric|"
            r"genetic|disability|political|union_membership)",
            "pii.sensitive",
        ),
        (
            r"(^|_)(iban|bic|swift|account_?number|bank_?account|routing_?number|salary|"
            r"income)($|_)",
            "financial",
        ),
        (
            r"(^|_)(date_of_birth|birth_?date|dob|passport|national_?id|ssn|tax_?id|"
            r"driving_?licen[cs]e|email|e_?mail|phone|mobile|full_?name|first_?name|last_?name|"
            r"surname|address|postcode|zip_?code|ip_?address)($|_)",
            "pii",
        ),
    ]
]


def suggest(name: str, spec: dict[str, Any]) -> str | None:
    """The data class a field's name or type suggests, or None."""
    if spec.get("type") == "email":
        return "pii"
    for pattern, cls in _SUGGESTIONS:
        if pattern.search(name):
            return cls
    return None


def suggestions(definition: dict[str, Any]) -> list[dict[str, str]]:
    """Unclassified fields whose name or type suggests a class: path, suggested class."""
    found = []
    for ename, entity in definition.get("entities", {}).items():
        for fname, spec in entity.get("fields", {}).items():
            if "classification" in spec:
                continue  # classified (even as "none") is a person's decision
            cls = suggest(fname, spec)
            if cls:
                found.append(
                    {
                        "path": f"entities.{ename}.fields.{fname}.classification",
                        "classification": cls,
                        "message": f"{ename}.{fname} looks like {cls} data; classify it "
                        f"(classification: {cls}, or none)",
                    }
                )
    return found


def mask(value: Any, field: dict[str, Any]) -> Any:
    """A value as shown to a reader who may not see it in full (keeps what PCI DSS allows)."""
    if value is None:
        return None
    text = str(value)
    cls = field.get("classification", "none")
    if cls == "pci.pan":
        digits = re.sub(r"\D", "", text)
        return "*" * max(len(digits) - 4, 0) + digits[-4:]  # PCI DSS 3.4.1: last four at most
    if field.get("type") == "email" and "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}"
    if cls == "credential":
        return "********"  # not even the length of a secret
    if len(text) <= 4:
        return "*" * len(text)
    if cls == "financial":
        return "*" * (len(text) - 4) + text[-4:]
    return text[:1] + "*" * (len(text) - 1)
