"""The plugins the tests use, and building them all at once.

Each build (componentize-py) takes tens of seconds and is cached by source hash under
`PLINTH_CACHE_DIR`; `python -m tests.extensions.builds` builds those not built yet, side by
side, so scripts/test and CI can start it while other set-up runs (the `components` fixture
then finds them built).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from plinth.extensions.build import build, default_cache_dir, is_built

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = {
    "fraud-scorer": ROOT / "examples/plugins/fraud-scorer",
    "address-normaliser": ROOT / "examples/plugins/address-normaliser",
    "hostile": ROOT / "tests/extensions/plugins/hostile",
}


def build_all() -> dict[str, Path]:
    """Every test plugin's component; the missing ones built in parallel (one process each)."""
    cache = default_cache_dir()
    with ThreadPoolExecutor(max_workers=len(PLUGINS)) as pool:
        futures = {name: pool.submit(build, source, cache) for name, source in PLUGINS.items()}
        return {name: future.result() for name, future in futures.items()}


if __name__ == "__main__":
    missing = [name for name, source in PLUGINS.items() if not is_built(source)]
    for name, path in build_all().items():
        print(f"plugin {name}: {path}" + (" (built now)" if name in missing else ""))
