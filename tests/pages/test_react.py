"""The React export: `compile --target react` writes a project that `npm run build` builds."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from plinth.cli.pages import cli
from tests.pages.conftest import DEMO
from tests.pages.react_export import built_demo, compile_demo, npm

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is needed")


def test_the_react_export_of_the_demo_builds(tmp_path_factory):
    out = built_demo(tmp_path_factory)  # compiled with --target react, installed, built
    pages = sorted(p.name for p in (out / "src" / "pages").iterdir())
    assert pages == [
        "ClaimDetailPage.tsx",
        "ClaimsPage.tsx",
        "FileClaimPage.tsx",
        "TaskInboxPage.tsx",
        "index.ts",
    ]
    spec = json.loads((out / "src" / "app.json").read_text())
    assert spec["tenant"] == "acme" and "file_claim" in spec["pages"]
    assert (out / "dist" / "index.html").is_file()
    assert any(p.suffix == ".js" for p in (out / "dist" / "assets").iterdir())


def test_a_broken_type_fails_the_build(tmp_path_factory, tmp_path):
    """The generated TypeScript is really type-checked (so the passing build means something)."""
    out = tmp_path / "p"
    compile_demo(out)
    page = out / "src" / "pages" / "ClaimsPage.tsx"
    page.write_text(page.read_text().replace("{...props}", "{...props} bogus={1}"))
    # The packages the passing build was installed with: the same project but for this line.
    (out / "node_modules").symlink_to(built_demo(tmp_path_factory) / "node_modules")
    build = npm(out, "run", "build")
    assert build.returncode != 0 and "bogus" in build.stdout + build.stderr
    # Only that line: a missing package or type would fail it too.
    assert build.stdout.count("error TS") == 1, build.stdout


def test_webcomponents_from_the_cli_and_bad_targets(tmp_path):
    done = CliRunner().invoke(
        cli,
        [
            "compile",
            "acme",
            "claims",
            str(tmp_path),
            "--target",
            "webcomponents",
            "--folder",
            str(DEMO),
        ],
    )
    assert done.exit_code == 0, done.output
    (module,) = tmp_path.glob("claims.*.js")
    assert subprocess.run(["node", "--check", str(module)]).returncode == 0
    bad = CliRunner().invoke(
        cli,
        ["compile", "acme", "claims", str(tmp_path), "--target", "angular", "--folder", str(DEMO)],
    )
    assert bad.exit_code != 0
