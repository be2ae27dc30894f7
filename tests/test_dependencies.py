"""A fresh machine gets what CI tested: every dependency is bounded and pinned by the lock."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# Bound below their public Python API: a C API through ctypes, a native extension's data
# formats or error text, generated guest bindings. A new release may break them silently.
BELOW_PUBLIC_API = {
    "wasmtime",
    "pycrdt",
    "cedarpy",
    "componentize-py",
    "cel-expr-python",
    "common-expression-language",
    "jsonschema-rs",
    "protobuf",
    "aiosqlite",
}


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    return [Requirement(line) for line in lines]


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_each_dependency_is_named_once_with_a_floor_and_binding_ones_with_a_ceiling() -> None:
    names = [canonicalize_name(r.name) for r in _requirements()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for requirement in _requirements():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators & {">=", "==", "~="}, f"{requirement} has no lower bound"
        if canonicalize_name(requirement.name) in BELOW_PUBLIC_API:
            assert operators & {"<", "==", "~="}, f"{requirement} has no upper bound"


def test_the_lock_pins_every_dependency_within_its_bounds() -> None:
    pins = _pins()
    for requirement in _requirements():
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"constraints.txt has no pin for {requirement.name}"
        assert pinned in requirement.specifier, (
            f"constraints.txt pins {requirement.name}=={pinned}, outside {requirement}; "
            "run scripts/upgrade-deps (or scripts/lock)"
        )


def test_the_wasmtime_bounds_admit_both_bindings_the_meter_speaks() -> None:
    [wasmtime] = [r for r in _requirements() if r.name == "wasmtime"]
    assert {"50.0.1", "51.0.0"} <= set(wasmtime.specifier.filter(["50.0.1", "51.0.0"]))
