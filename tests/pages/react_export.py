"""The demo app's React export, compiled, installed and built once per test run.

`npm install` and `npm run build` take tens of seconds on a busy machine, and tests/pages (the
build works) and tests/e2e (the build renders) need the same build: the first test process to
ask builds it, the others wait for it and reuse it. Per run, never across runs: each run
installs what the dependency ranges allow today.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plinth.cli.pages import cli

DEMO = Path(__file__).parents[2] / "src" / "plinth" / "demo" / "claims"


def npm(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )


def compile_demo(out: Path, *options: str) -> None:
    """`plinth app compile acme claims OUT OPTIONS --folder <the demo>`."""
    done = CliRunner().invoke(
        cli, ["compile", "acme", "claims", str(out), *options, "--folder", str(DEMO)]
    )
    assert done.exit_code == 0, done.output


def built_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's React export after `npm install` and `npm run build` (its `dist/` built)."""
    base = tmp_path_factory.getbasetemp()
    # pytest-xdist's processes of one run have their temp folders side by side in the run's.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out = shared / "react-demo"
    with (shared / "react-demo.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not out.is_dir():
            partial = shared / f"react-demo.{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            compile_demo(partial, "--target", "react")
            install = npm(partial, "install")
            assert install.returncode == 0, install.stdout + install.stderr
            build = npm(partial, "run", "build")
            assert build.returncode == 0, build.stdout + build.stderr
            partial.rename(out)  # a failed build leaves nothing for the next to reuse
    return out
