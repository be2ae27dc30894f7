"""Reading and validating `plinth-plugin.toml`: every fault reported with its path."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from plinth.errors import FaultList
from plinth.extensions.models import CAPABILITIES, POINTS, Manifest, PointSpec

NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
VERSION = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
HOST = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$")
ACTION = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
HOOK_TARGET = re.compile(r"^(\*|[a-z][a-z0-9_-]*\.(\*|[a-z][a-z0-9_]*))$")
# A valid custom element name (HTML standard), restricted to ASCII: starts with a lowercase
# letter, contains a dash, no uppercase.
CUSTOM_ELEMENT = re.compile(r"^[a-z][a-z0-9._]*-[a-z0-9._-]*$")
# Names the HTML standard reserves (they contain a dash but are SVG/MathML elements).
RESERVED_TAGS = frozenset(
    {
        "annotation-xml",
        "color-profile",
        "font-face",
        "font-face-src",
        "font-face-uri",
        "font-face-format",
        "font-face-name",
        "missing-glyph",
    }
)
# Prefixes of the portal's own elements (built-in components, pages, the app shell).
BUILTIN_PREFIXES = ("plinth-", "pl-")
MODULE_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\.m?js$")


def parse(text: str) -> Manifest:
    """Parse manifest text, or raise ValidationFailed listing every fault."""
    faults = FaultList()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        faults.add("(root)", f"Not valid TOML: {exc}", "syntax")
        faults.raise_if_any("plugin manifest")
        raise AssertionError from exc  # unreachable
    return validate(data, faults)


def _str(
    data: dict[str, Any],
    key: str,
    faults: FaultList,
    pattern: re.Pattern[str] | None,
    hint: str,
    required: bool = True,
) -> str:
    value = data.get(key)
    if value is None:
        if required:
            faults.add(key, f"{key} is required", "required")
        return ""
    if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
        faults.add(key, f"{key} must be {hint}", "format")
        return ""
    return value


def validate(data: dict[str, Any], faults: FaultList | None = None) -> Manifest:
    """Validate a parsed manifest."""
    faults = faults if faults is not None else FaultList()
    name = _str(data, "name", faults, NAME, "lowercase letters, digits and '-' (2-63)")
    version = _str(data, "version", faults, VERSION, "a semantic version like 1.2.0")
    publisher = _str(data, "publisher", faults, NAME, "a lowercase publisher id")
    description = _str(data, "description", faults, None, "text", required=False)
    if len(description) > 2000:
        faults.add("description", "description is at most 2000 characters", "max_length")

    caps = data.get("capabilities", [])
    if not isinstance(caps, list):
        faults.add("capabilities", "capabilities must be a list", "type")
        caps = []
    for i, cap in enumerate(caps):
        if cap not in CAPABILITIES:
            faults.add(
                f"capabilities.{i}",
                f"Unknown capability {cap!r}; known: {', '.join(CAPABILITIES)}",
                "unknown",
            )
    hosts = data.get("http", {}).get("hosts", []) if isinstance(data.get("http"), dict) else []
    for i, host in enumerate(hosts):
        if not isinstance(host, str) or not HOST.match(host):
            faults.add(f"http.hosts.{i}", "A host is a name with an optional :port", "format")
    if hosts and "http" not in caps:
        faults.add("http.hosts", "http.hosts needs the 'http' capability", "requires")

    points: list[PointSpec] = []
    actions = data.get("actions", {})
    if not isinstance(actions, dict):
        faults.add("actions", "actions must be a table of action names", "type")
        actions = {}
    for act, spec in actions.items():
        path = f"actions.{act}"
        if not ACTION.match(act):
            faults.add(path, "An action name is lowercase letters, digits, '_' or '-'", "format")
        if not isinstance(spec, dict):
            faults.add(path, "An action is a table (description, input, output)", "type")
            continue
        schemas = [spec.get("input"), spec.get("output")]
        for key, schema in zip(("input", "output"), schemas, strict=True):
            if schema is not None and not _valid_schema(schema):
                faults.add(f"{path}.{key}", "Not a valid JSON Schema", "schema")
        points.append(PointSpec("action", act, spec.get("input"), spec.get("output")))
    hooks = data.get("before_write", {})
    targets = hooks.get("entities", []) if isinstance(hooks, dict) else []
    for i, target in enumerate(targets):
        if not isinstance(target, str) or not HOOK_TARGET.match(target):
            faults.add(
                f"before_write.entities.{i}", "A target is 'app.entity', 'app.*' or '*'", "format"
            )
        else:
            points.append(PointSpec("before-write", target))
    comps = data.get("components", {})
    if not isinstance(comps, dict):
        faults.add("components", "components must be a table of custom element names", "type")
        comps = {}
    for tag, spec in comps.items():
        points += _component(tag, spec, faults)
    if comps and "ui" not in caps:
        faults.add(
            "components",
            "components need the 'ui' capability (the tenant admin "
            "approves running the plugin's JavaScript in portal pages)",
            "requires",
        )
    stateless = data.get("stateless", False)
    if not isinstance(stateless, bool):
        faults.add("stateless", "stateless must be true or false", "type")
        stateless = False
    if not points:
        faults.add(
            "actions",
            f"A plugin provides at least one extension point ({', '.join(POINTS)})",
            "required",
        )
    faults.raise_if_any("plugin manifest")
    return Manifest(
        name=name,
        version=version,
        publisher=publisher,
        description=description,
        capabilities=tuple(caps),
        http_hosts=tuple(hosts),
        points=tuple(points),
        raw=data,
        stateless=stateless,
    )


def _component(tag: str, spec: Any, faults: FaultList) -> list[PointSpec]:
    """One `[components.<tag>]` table: a custom element, its props schema and its module."""
    from plinth.pages import components as builtin

    path = f"components.{tag}"
    if not CUSTOM_ELEMENT.match(tag) or tag in RESERVED_TAGS:
        faults.add(
            path,
            f"{tag!r} is not a valid custom element name: lowercase letters, "
            "digits, '.', '_' and '-', starting with a letter and containing a dash "
            "(e.g. fraud-badge)",
            "format",
        )
        return []
    if tag.startswith(BUILTIN_PREFIXES) or builtin.get(tag) is not None:
        faults.add(
            path,
            f"{tag!r} collides with Plinth's built-in components (names starting "
            f"with {' or '.join(BUILTIN_PREFIXES)} are reserved)",
            "reserved",
        )
        return []
    if not isinstance(spec, dict):
        faults.add(path, "A component is a table (description, module, props)", "type")
        return []
    module = spec.get("module")
    if not isinstance(module, str) or not MODULE_PATH.match(module) or ".." in module.split("/"):
        faults.add(
            f"{path}.module",
            "module is the relative path of an ES module in the "
            "plugin, ending in .js (e.g. ui/elements.js)",
            "format",
        )
        module = None
    props = spec.get("props", {"type": "object"})
    if not _valid_schema(props) or props.get("type", "object") != "object":
        faults.add(f"{path}.props", "props must be a JSON Schema of an object", "schema")
        props = None
    description = spec.get("description", "")
    if not isinstance(description, str) or len(description) > 2000:
        faults.add(
            f"{path}.description", "description is text of at most 2000 characters", "format"
        )
        description = ""
    for key in spec:
        if key not in ("module", "props", "description"):
            faults.add(
                f"{path}.{key}",
                f"Unknown key {key!r}; a component has module, props and description",
                "unknown",
            )
    if module is None or props is None:
        return []
    return [PointSpec("component", tag, props, module=module, description=description)]


def _valid_schema(schema: Any) -> bool:
    import jsonschema_rs

    if not isinstance(schema, dict):
        return False
    try:
        jsonschema_rs.validator_for(schema)
    except Exception:
        return False
    return True
