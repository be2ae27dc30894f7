"""Compile targets: what a published version can be turned into, all in this package and
listed in one registry.

Each target is one file implementing `base.Target` (`openapi.py`, `webcomponents.py`,
`react.py`). The registry says which targets this platform offers (the designer's palette, the
CLI, the compile route); `compiler/cache.py` keeps what they compiled.
"""

from __future__ import annotations

from plinth.compiler.targets.base import AppVersion, Artifact, Target
from plinth.compiler.targets.openapi import OpenAPI
from plinth.compiler.targets.react import React
from plinth.compiler.targets.webcomponents import WebComponents

__all__ = ["TARGETS", "AppVersion", "Artifact", "Target", "Targets"]


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

    def get(self, name: str) -> Target | None:
        return self._targets.get(name)

    def names(self) -> list[str]:
        return list(self._targets)

    def all(self) -> list[Target]:
        return list(self._targets.values())


TARGETS = Targets(OpenAPI(), WebComponents(), React())
