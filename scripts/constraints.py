"""Write constraints.txt from a pip installation report, and say what changed.

Usage: python scripts/constraints.py REPORT.json constraints.txt (scripts/lock and
scripts/upgrade-deps call it). The report is pip's `--report` of installing Plinth with its
test extra: every package it resolved, except Plinth itself, is pinned exactly.
"""

from __future__ import annotations

import json
import platform
import re
import sys
from pathlib import Path

HEADER = """\
# The exact versions of Plinth's dependencies (with the test extra) that CI tested, resolved for
# Python {python} on {system} {machine}. scripts/demo and scripts/test install with
# `pip install -c constraints.txt`. Written by scripts/lock; scripts/upgrade-deps moves it to
# the newest versions pyproject.toml's bounds allow once the suite passes with them.
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_of(report: dict[str, object]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for item in report["install"]:  # type: ignore[attr-defined]
        meta = item["metadata"]
        if canonical(meta["name"]) == "plinth":
            continue
        pins[canonical(meta["name"])] = meta["version"]
    return dict(sorted(pins.items()))


def read(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                found[canonical(name)] = version.strip()
    return found


def main(report_path: Path, out: Path) -> None:
    pins = pins_of(json.loads(report_path.read_text()))
    before = read(out)
    python = ".".join(platform.python_version_tuple()[:2])
    header = HEADER.format(
        python=python, system=platform.system().lower(), machine=platform.machine()
    )
    out.write_text(header + "".join(f"{name}=={version}\n" for name, version in pins.items()))
    changes = [
        f"  {name} {before.get(name, '(new)')} → {pins.get(name, '(removed)')}"
        for name in sorted(before.keys() | pins.keys())
        if before.get(name) != pins.get(name)
    ]
    print(
        f"{out.name}: {len(pins)} packages pinned; "
        + (f"{len(changes)} changed:" if changes else "nothing changed")
    )
    for line in changes:
        print(line)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
