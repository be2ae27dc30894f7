"""`plinth plugin new` and `build`: a scaffold that builds, and errors that name the file."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from plinth.cli.plugin import cli
from tests.extensions.conftest import CACHE, PLUGINS

runner = CliRunner()


def test_new_then_build_makes_a_package(tmp_path: Path) -> None:
    target = tmp_path / "greeter"
    result = runner.invoke(cli, ["new", "greeter", "--directory", str(target)])
    assert result.exit_code == 0, result.output
    assert (target / "plinth-plugin.toml").is_file() and (target / "plugin.py").is_file()
    # The scaffold's sources are the same every time, so this is a cache hit (keyed by source
    # hash) of the build scripts/test and CI start before the tests (tests/extensions/builds.py).
    result = runner.invoke(cli, ["build", str(target), "--cache-dir", str(CACHE)])
    assert result.exit_code == 0, result.output
    package = target / "dist" / "greeter-0.1.0.zip"
    with zipfile.ZipFile(package) as z:
        assert set(z.namelist()) == {"plinth-plugin.toml", "plugin.wasm"}
        assert z.read("plugin.wasm").startswith(b"\0asm")
    again = runner.invoke(cli, ["new", "greeter", "--directory", str(target)])
    assert again.exit_code == 1 and "not empty" in again.output


def test_build_reports_manifest_faults_with_paths(tmp_path: Path) -> None:
    (tmp_path / "plinth-plugin.toml").write_text('name = "x"\n')
    (tmp_path / "plugin.py").write_text("")
    result = runner.invoke(cli, ["build", str(tmp_path), "--cache-dir", str(CACHE)])
    assert result.exit_code == 1
    assert "version:" in result.output and "publisher:" in result.output


def test_build_packs_the_ui_modules_its_components_name(
    tmp_path: Path, components: dict[str, Path]
) -> None:
    # A copy of the fraud scorer: same sources, so a cache hit of the session's build.
    source = tmp_path / "fraud-scorer"
    shutil.copytree(PLUGINS["fraud-scorer"], source, ignore=shutil.ignore_patterns("dist"))
    result = runner.invoke(cli, ["build", str(source), "--cache-dir", str(CACHE)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(source / "dist" / "fraud-scorer-1.1.0.zip") as z:
        assert z.read("ui/elements.js") == (source / "ui/elements.js").read_bytes()
    (source / "ui/elements.js").unlink()
    result = runner.invoke(cli, ["build", str(source), "--cache-dir", str(CACHE)])
    assert result.exit_code == 1 and "ui/elements.js" in result.output
