"""What every compile target shares: the version it compiles, the artifact it makes, and the
`Target` protocol itself. Kept apart from the registry so a target module can import it
without importing every other target."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class AppVersion:
    """One published version of an app, as the targets see it."""

    tenant: str
    slug: str
    name: str
    number: int
    hash: str  # the definition's content hash
    definition: dict[str, Any]


@dataclass(frozen=True)
class Artifact:
    """A compiled output: its bytes, what they are, and a strong ETag of them."""

    body: bytes
    media_type: str
    etag: str  # quoted strong ETag: the hash of the body


def artifact(body: bytes, media_type: str) -> Artifact:
    return Artifact(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


class Target(Protocol):
    """A compile target: turns a published version into one artifact.

    `compile` must be a pure function of the version and `revision()`: the cache keeps its
    output by (version, target name, revision) and never asks again.
    """

    name: str
    description: str
    media_type: str

    def revision(self) -> str:
        """What besides the version the output depends on ("" when nothing does)."""
        ...

    def compile(self, version: AppVersion) -> Artifact: ...
