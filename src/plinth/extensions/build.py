"""Building a Python plugin into a WebAssembly component with componentize-py, cached.

A build takes seconds and hundreds of MB, so results are kept under `cache_dir` keyed by the
SHA-256 of everything that goes in (the author's sources, the WIT world, the guest SDK and the
componentize-py version): the same sources never build twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path

from plinth.errors import BadRequest, FaultList
from plinth.extensions import manifest as manifest_mod

HERE = Path(__file__).parent
WIT_DIR = HERE / "wit"
SDK = HERE / "sdk" / "plinth_sdk.py"
MANIFEST = "plinth-plugin.toml"
ENTRY = "plugin.py"


def default_cache_dir() -> Path:
    """`PLINTH_CACHE_DIR`, else the user's cache directory (shared by every data dir)."""
    if os.environ.get("PLINTH_CACHE_DIR"):
        return Path(os.environ["PLINTH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plinth"


def is_built(source: Path, cache_dir: Path | None = None) -> bool:
    """Whether `build` would return at once (the sources are already built)."""
    cache = (cache_dir or default_cache_dir()).resolve() / "builds"
    return (cache / f"{source_hash(source.resolve())}.wasm").exists()


def _sources(source: Path) -> list[Path]:
    return sorted(
        p
        for p in source.rglob("*.py")
        if "__pycache__" not in p.parts and not p.name.startswith(".")
    )


def source_hash(source: Path) -> str:
    """The cache key of a plugin's build: its sources plus the toolchain that builds them."""
    h = hashlib.sha256()
    with contextlib.suppress(importlib_metadata.PackageNotFoundError):
        h.update(importlib_metadata.version("componentize-py").encode())
    for p in [*sorted(WIT_DIR.glob("*.wit")), SDK]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    for p in _sources(source):
        h.update(str(p.relative_to(source)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def build(source: Path, cache_dir: Path | None = None) -> Path:
    """The component for the plugin in `source`, building it only if its sources changed."""
    source = source.resolve()
    faults = FaultList()
    if not (source / MANIFEST).is_file():
        faults.add(MANIFEST, f"{source} has no {MANIFEST}", "missing")
    if not (source / ENTRY).is_file():
        faults.add(ENTRY, f"{source} has no {ENTRY}", "missing")
    faults.raise_if_any("plugin")
    manifest_mod.parse((source / MANIFEST).read_text())
    cache = (cache_dir or default_cache_dir()).resolve() / "builds"
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{source_hash(source)}.wasm"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(prefix="plinth-build-") as tmp:
        work = Path(tmp)
        for p in _sources(source):
            target = work / p.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
        shutil.copy2(SDK, work / "plinth_sdk.py")
        (work / "plinth_app.py").write_text(
            "import plugin  # noqa: F401  (registers)\n"
            "from plinth_sdk import WitWorld  # noqa: F401\n"
        )
        partial = out.with_suffix(".partial")
        tool = Path(sys.executable).with_name("componentize-py")
        cmd = [
            str(tool) if tool.exists() else "componentize-py",
            "-d",
            str(WIT_DIR),
            "-w",
            "plugin",
            "componentize",
            "plinth_app",
            "-p",
            str(work),
            "-o",
            str(partial),
        ]
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BadRequest(
                "The plugin did not build",
                path=ENTRY,
                extra={"output": (done.stderr or done.stdout)[-4000:]},
            )
        partial.replace(out)  # atomic: a concurrent reader never sees half a file
    return out
