"""One real plugin call in this process, with whatever wasmtime is first on `sys.path`.

`python -m tests.extensions.wasmtime_call WASM CACHE_DIR` runs the hostile test plugin's
`echo` action and its `membomb` action (which must be stopped at its memory limit, the guest
seeing a MemoryError) in the sandbox, metered, and prints what happened as JSON. A crash of
this process is what the test guards against, so it runs in a child.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import wasmtime

from plinth.extensions.models import DEFAULT_LIMITS, PluginFailed
from plinth.extensions.sandbox import Sandbox

BOMB_LIMIT = 48 << 20


class LogOnly:
    """A call's capabilities: `log`, nothing else."""

    def call(self, capability: str, func: str, args: tuple[Any, ...]) -> tuple[str, str]:
        return ("ok", "") if capability == "log" else ("err", f"{capability} is not granted")


def main(wasm: Path, cache: Path) -> dict[str, Any]:
    sandbox = Sandbox(cache, measure_memory=True)
    try:
        component, _ = sandbox.component(hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
        limits = DEFAULT_LIMITS["action"]
        echo = sandbox.call(
            component, "action", ("echo", json.dumps({"hello": "wasmtime"})), limits, LogOnly()
        )
        try:
            bomb = sandbox.call(
                component,
                "action",
                ("membomb", "{}"),
                replace(limits, memory_bytes=BOMB_LIMIT),
                LogOnly(),
            )
            membomb = {"tag": bomb.tag, "payload": bomb.payload[:500], "peak": bomb.peak_memory}
        except PluginFailed as exc:
            membomb = {"tag": exc.code, "peak": getattr(exc, "peak_memory", None)}
        return {
            "wasmtime": version("wasmtime"),
            "module": wasmtime.__file__,
            "metered": sandbox.meter is not None,
            "tag": echo.tag,
            "output": json.loads(echo.payload),
            "peak_memory": echo.peak_memory,
            "membomb": membomb,
        }
    finally:
        sandbox.stop()


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
