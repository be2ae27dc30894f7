"""The lowest and the highest wasmtime that pyproject.toml allows, each in a folder of its own.

Plinth leans on wasmtime below its public Python API (the peak-memory meter reads how it lays
linear memory out), so a new release can silently break what a call reports. The bounds in
pyproject.toml say which releases are known; `test_wasmtime_bounds.py` proves both ends by
running a plugin call with each first on `sys.path`. `python -m tests.extensions.wasmtimes`
(scripts/test runs it) asks the package index which releases the bounds admit and installs
the two ends with `pip install --target` into `<PLINTH_CACHE_DIR>/wasmtime/<version>`, once
per version.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from plinth.extensions.build import default_cache_dir

ROOT = Path(__file__).resolve().parents[2]


def specifier() -> SpecifierSet:
    """The bounds pyproject.toml puts on wasmtime."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.name == "wasmtime":
            return requirement.specifier
    raise LookupError("pyproject.toml does not name wasmtime")


def home() -> Path:
    return default_cache_dir() / "wasmtime"


def resolve(spec: SpecifierSet) -> tuple[str, str]:
    """The lowest and the highest release on the index that `spec` admits."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "wasmtime"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    # "Available versions: 51.0.0, 50.0.1, …" (the text form: older pips have no --json)
    line = next(x for x in done.stdout.splitlines() if x.startswith("Available versions:"))
    released = line.partition(":")[2].split(",")
    allowed = sorted(Version(v.strip()) for v in released if v.strip() in spec)
    if not allowed:
        raise LookupError(f"no wasmtime release satisfies {spec}")
    return str(allowed[0]), str(allowed[-1])


def install(version: str) -> Path:
    """The folder holding wasmtime `version` alone, installed once."""
    folder = home() / version
    if (folder / "wasmtime" / "__init__.py").is_file():
        return folder
    home().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home(), prefix=".install-") as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--target",
                tmp,
                f"wasmtime=={version}",
            ],
            check=True,
            timeout=600,
        )
        shutil.rmtree(folder, ignore_errors=True)
        Path(tmp).rename(folder)  # whole or not at all: a run that died leaves no half folder
        Path(tmp).mkdir()  # for TemporaryDirectory's clean-up
    return folder


def ensure(*, refresh: bool = False) -> dict[str, Path]:
    """{"lowest": folder, "highest": folder} for the current bounds: resolved from the index
    when the bounds changed or with `refresh` (a newer release may have come out)."""
    spec = str(specifier())
    manifest = home() / "bounds.json"
    try:
        known = json.loads(manifest.read_text())
    except (OSError, ValueError):
        known = {}
    if refresh or known.get("specifier") != spec:
        lowest, highest = resolve(SpecifierSet(spec))
        known = {"specifier": spec, "lowest": lowest, "highest": highest}
    folders = {end: install(known[end]) for end in ("lowest", "highest")}
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(known) + "\n")
    return folders


if __name__ == "__main__":
    for end, path in ensure(refresh=True).items():
        print(f"wasmtime {path.name} ({end} that pyproject.toml allows): {path}")
