"""Pages tests need the browser runtime bundle (built once per session by setup.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from plinth.metadata.files import read_folder

SETUP = Path(__file__).with_name("setup.sh")
DEMO = Path(__file__).parents[2] / "src" / "plinth" / "demo" / "claims"


@pytest.fixture(scope="session")
def runtime_built() -> None:
    """Build src/plinth/pages/runtime-js/dist (npm install the first time)."""
    subprocess.run(["sh", str(SETUP)], check=True, timeout=300)


@pytest.fixture
def demo() -> dict:
    """The demo claims app's definition without its workflows: they call the fraud-scorer
    plugin, which publish requires the tenant to have installed, and these tests do not build
    plugins (pages need entities, policies and pages only)."""
    definition = read_folder(DEMO)[1]
    definition.pop("workflows", None)
    return definition
