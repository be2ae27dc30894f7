"""The plugins the tests use, and building them all at once.

Each build (componentize-py) takes tens of seconds and is cached by source hash under
`PLINTH_CACHE_DIR`; so is each compiled artifact (wasmtime, seconds to a minute on a busy
machine) under `PLINTH_CACHE_DIR/compiled`. `python -m tests.extensions.builds` builds and
compiles what is missing, side by side, so scripts/test and CI can start it while other set-up
runs: the `components` fixture, and servers the tests start, then find them ready (a cold
compile inside a request could outlast its time limit on a loaded machine).
"""

from __future__ import annotations

import hashlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from plinth.cli.plugin import new
from plinth.extensions.build import build, default_cache_dir, is_built
from plinth.extensions.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = {
    "fraud-scorer": ROOT / "examples/plugins/fraud-scorer",
    "address-normaliser": ROOT / "examples/plugins/address-normaliser",
    "hostile": ROOT / "tests/extensions/plugins/hostile",
}
# `plinth plugin new greeter`, which tests/extensions/test_cli.py scaffolds and builds: the same
# sources every time, so the same cache entry.
SCAFFOLD = "greeter"


def build_scaffold() -> Path:
    """The component of the `SCAFFOLD` plugin's scaffold (built only, never compiled: the test
    packs it and loads nothing)."""
    with tempfile.TemporaryDirectory() as tmp:
        new(SCAFFOLD, directory=Path(tmp) / SCAFFOLD)
        return build(Path(tmp) / SCAFFOLD, default_cache_dir())


def build_all() -> dict[str, Path]:
    """Every test plugin's component; the missing ones built in parallel (one process each)."""
    cache = default_cache_dir()
    with ThreadPoolExecutor(max_workers=len(PLUGINS)) as pool:
        futures = {name: pool.submit(build, source, cache) for name, source in PLUGINS.items()}
        return {name: future.result() for name, future in futures.items()}


def compile_all(components: dict[str, Path]) -> list[str]:
    """Compile each component for this machine into the shared cache (as a server would, with
    the default settings); the names of those compiled now."""
    sandbox = Sandbox(default_cache_dir() / "compiled")
    try:
        shas = {
            name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in components.items()
        }
        cold = [name for name, sha in shas.items() if not sandbox.is_compiled(sha)]
        with ThreadPoolExecutor(max_workers=len(cold) or 1) as pool:
            list(pool.map(lambda name: sandbox.component(shas[name], components[name]), cold))
        return cold
    finally:
        sandbox.stop()


if __name__ == "__main__":
    missing = [name for name, source in PLUGINS.items() if not is_built(source)]
    with ThreadPoolExecutor(max_workers=1) as aside:
        scaffold = aside.submit(build_scaffold)  # beside the others
        components = build_all()
        compiled = compile_all(components)
        print(f"plugin {SCAFFOLD} (scaffold): {scaffold.result()}")
    for name, path in components.items():
        done = [w for w, now in (("built", name in missing), ("compiled", name in compiled)) if now]
        print(f"plugin {name}: {path}" + (f" ({' and '.join(done)} now)" if done else ""))
