"""The React export: `compile --target react` writes a project that `npm run build` builds."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from plinth.cli.pages import cli
from tests.pages.conftest import DEMO

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is needed")


def npm(folder, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_react_export_of_the_demo_builds(tmp_path):
    out = tmp_path / "claims-react"
    done = CliRunner().invoke(
        cli, ["compile", "acme", "claims", str(out), "--target", "react", "--folder", str(DEMO)]
    )
    assert done.exit_code == 0, done.output
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
    assert npm(out, "install").returncode == 0
    build = npm(out, "run", "build")
    assert build.returncode == 0, build.stdout + build.stderr
    assert (out / "dist" / "index.html").is_file()
    assert any(p.suffix == ".js" for p in (out / "dist" / "assets").iterdir())


def test_a_broken_type_fails_the_build(tmp_path):
    """The generated TypeScript is really type-checked (so the passing build means something)."""
    out = tmp_path / "p"
    assert (
        CliRunner()
        .invoke(cli, ["compile", "acme", "claims", str(out), "--folder", str(DEMO)])
        .exit_code
        == 0
    )
    page = out / "src" / "pages" / "ClaimsPage.tsx"
    page.write_text(page.read_text().replace("{...props}", "{...props} bogus={1}"))
    assert npm(out, "install").returncode == 0
    build = npm(out, "run", "build")
    assert build.returncode != 0 and "bogus" in build.stdout + build.stderr


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
