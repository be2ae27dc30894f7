"""Compile targets: what a published version can be turned into, listed in one registry.

The compilers live one file each: `openapi.py` here (served by `compiler/api.py`), the page
targets in `pages/targets/` (served by the portal, written by `plinth app compile`). The
registry says which targets this platform offers, for the designer's palette and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One compile target: its name, what it produces, and for whom."""

    name: str
    description: str
    output: str  # a media type, or "folder" for a project written to disk


class Targets:
    """The compile targets, by name (built-ins below; a plugin of the platform adds its own)."""

    def __init__(self, *builtins: Target) -> None:
        self._targets: dict[str, Target] = {}
        for target in builtins:
            self.register(target)

    def register(self, target: Target) -> Target:
        """Add (or replace, by name) a target."""
        self._targets[target.name] = target
        return target

    def unregister(self, name: str) -> None:
        self._targets.pop(name, None)

    def names(self) -> list[str]:
        return list(self._targets)

    def all(self) -> list[Target]:
        return list(self._targets.values())


TARGETS = Targets(
    Target("openapi", "The app's REST API as an OpenAPI 3.1 document", "application/json"),
    Target(
        "webcomponents",
        "The app's pages as one standalone Web Components module",
        "text/javascript",
    ),
    Target("react", "The app's pages as a React project to build with npm", "folder"),
)
