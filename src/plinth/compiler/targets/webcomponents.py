"""The `webcomponents` target: one standalone ES module per app version.

The module holds the version's page spec and imports the shared Lit runtime, which defines
a custom element per page (`plinth-page-<app>-<page>`) and the portal shell
(`plinth-app-<app>`). Modules are compiled once per (version hash, runtime hash) and served
immutable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plinth.compiler.targets.base import AppVersion, Artifact, artifact
from plinth.compiler.targets.spec import app_spec
from plinth.errors import Unavailable

# The browser runtime is built with the pages (their components render through it).
RUNTIME = Path(__file__).parents[2] / "pages" / "runtime-js" / "dist" / "plinth-runtime.js"
MEDIA_TYPE = "text/javascript"


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
        _runtime = (mtime, artifact(RUNTIME.read_bytes(), MEDIA_TYPE))
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


class WebComponents:
    """The target: the module the portal serves, importing the runtime at its portal URL."""

    name = "webcomponents"
    description = "The app's pages as one standalone Web Components module"
    media_type = MEDIA_TYPE

    def revision(self) -> str:
        return runtime_url()  # a rebuilt runtime gets a new name, so a new module

    def compile(self, version: AppVersion) -> Artifact:
        spec = app_spec(
            version.tenant,
            version.slug,
            version.name,
            version.number,
            version.hash,
            version.definition,
        )
        return artifact(compile_module(spec, runtime_url()).encode(), self.media_type)


def runtime_url() -> str:
    """Where the portal serves the runtime (`pages/portal.py`)."""
    return f"/a/-/{runtime_name()}"
