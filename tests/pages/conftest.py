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
    """The demo claims app's definition (entities and pages)."""
    return read_folder(DEMO)[1]
