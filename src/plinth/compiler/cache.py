"""One cache for every compile target's artifacts.

A published version never changes, so its artifact is compiled once and served many times.
The key is the version's content hash and the target (its name and revision); the tenant and
app are part of it too because the same definition published by two apps still compiles to
two outputs (their names are in them). Bounded: the least recently served goes first.
"""

from __future__ import annotations

from collections import OrderedDict

from plinth.compiler.targets.base import AppVersion, Artifact, Target

Key = tuple[str, str, str, str, str]


class ArtifactCache:
    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[Key, Artifact] = OrderedDict()
        self.compiled = 0  # how many compilations ran (tests and benchmarks read it)

    def get(self, version: AppVersion, target: Target) -> Artifact:
        """The artifact of `version` for `target`, compiled on a miss."""
        key = (version.tenant, version.slug, version.hash, target.name, target.revision())
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found
        made = target.compile(version)
        self.compiled += 1
        self._items[key] = made
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return made

    def __len__(self) -> int:
        return len(self._items)
