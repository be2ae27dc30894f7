"""A plugin call works under the lowest and the highest wasmtime that pyproject.toml allows.

Plinth leans on wasmtime below its public Python API: the peak-memory meter reads how
wasmtime lays linear memory out (and once bound its C API through ctypes: a release whose
binding changed aborted the whole server on the first plugin call). Each end of the bounds
runs in a child process with that release first on `sys.path`; both must return the call's
output, meter its peak memory, and stop a memory bomb at its limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.extensions import wasmtimes
from tests.extensions.builds import ROOT
from tests.extensions.conftest import CACHE
from tests.extensions.wasmtime_call import BOMB_LIMIT


@pytest.fixture(scope="session")
def ends() -> dict[str, Path]:
    """The two releases, installed by scripts/test (or here, once, when it has not run)."""
    return wasmtimes.ensure()


def test_a_plugin_call_works_under_the_lowest_and_the_highest_wasmtime_allowed(
    components: dict[str, Path], ends: dict[str, Path]
) -> None:
    assert ends["lowest"].name != ends["highest"].name, "the bounds admit one release only"
    children = {
        end: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.extensions.wasmtime_call",
                str(components["hostile"]),
                str(CACHE / "compiled"),
            ],
            cwd=ROOT,
            # Ahead of site-packages, for this child and the meter's self-test it starts.
            env={**os.environ, "PYTHONPATH": str(folder)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for end, folder in ends.items()
    }  # both at once: a cold compile of the component takes seconds per release
    for end, child in children.items():
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, f"wasmtime {ends[end].name} ({end}): {err[-2000:]}"
        got = json.loads(out.strip().splitlines()[-1])
        assert got["wasmtime"] == ends[end].name
        assert Path(got["module"]).is_relative_to(ends[end])  # that release, not the venv's
        assert (got["tag"], got["output"]) == ("ok", {"hello": "wasmtime"})
        assert got["metered"] and got["peak_memory"] > 0, got
        bomb = got["membomb"]
        assert bomb["tag"] == "err" and "MemoryError" in bomb["payload"], bomb
        assert BOMB_LIMIT // 2 < bomb["peak"] <= BOMB_LIMIT, bomb  # measured up to the limit
