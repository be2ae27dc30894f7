"""The `webcomponents` target: one standalone ES module per app version.

The module holds the version's page spec and imports the shared Lit runtime, which defines
a custom element per page (`plinth-page-<app>-<page>`) and the portal shell
(`plinth-app-<app>`). Modules are compiled once per (version hash, runtime hash) and served
immutable.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plinth.errors import Unavailable

RUNTIME = Path(__file__).parents[1] / "runtime-js" / "dist" / "plinth-runtime.js"


@dataclass(frozen=True)
class Artifact:
    body: bytes
    etag: str  # quoted strong ETag: the hash of the body


def artifact(body: bytes) -> Artifact:
    return Artifact(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


_runtime: tuple[float, Artifact] | None = None


def runtime() -> Artifact:
    """The bundled browser runtime (built by tests/pages/setup.sh), re-read when rebuilt."""
    global _runtime
    try:
        mtime = RUNTIME.stat().st_mtime
    except FileNotFoundError as exc:
        raise Unavailable(
            "The pages runtime is not built; ./scripts/demo builds it (or run tests/pages/setup.sh)"
        ) from exc
    if _runtime is None or _runtime[0] != mtime:
        _runtime = (mtime, artifact(RUNTIME.read_bytes()))
    return _runtime[1]


def runtime_name() -> str:
    """The runtime's immutable file name: it changes whenever the runtime does."""
    return f"runtime.{runtime().etag.strip(chr(34))[:16]}.js"


def compile_module(spec: dict[str, Any], runtime_url: str) -> str:
    """The ES module of one app version: its spec, handed to the runtime."""
    # `</` cannot end a script in JSON embedded in HTML elsewhere; escaping keeps it inert.
    data = json.dumps(spec, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return (
        f"// Plinth app {spec['tenant']}/{spec['slug']} version {spec['version']} "
        f"({spec['hash'][:12]}), compiled by the webcomponents target.\n"
        f"import {{ definePages }} from {json.dumps(runtime_url)};\n"
        f"export const app = {data};\n"
        "export const elements = definePages(app);\n"
    )


class ModuleCache:
    """Compiled modules keyed by version hash and runtime: compiled once, served many times."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, str], Artifact] = OrderedDict()
        self.compiled = 0  # how many compilations ran (tests and benchmarks read it)

    def get(self, key: tuple[str, str, str], build: Any) -> Artifact:
        """The cached artifact for `key`, building it with `build()` on a miss."""
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found
        made = artifact(build().encode())
        self.compiled += 1
        self._items[key] = made
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return made
