"""The React export of the demo app renders the same page as the portal, against a real server."""

from __future__ import annotations

import mimetypes
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plinth.pages.cli import cli
from tests.e2e.conftest import ROOT

DEMO = ROOT / "src" / "plinth" / "demo" / "claims"
ORIGIN = "http://react.test"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("react") / "claims"
    done = CliRunner().invoke(cli, ["compile", "acme", "claims", str(out), "--folder", str(DEMO)])
    assert done.exit_code == 0, done.output
    for args in (["install"], ["run", "build"]):
        run = subprocess.run(["npm", *args, "--no-audit", "--no-fund", "--loglevel=error"],
                             cwd=out, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
    return out / "dist"


def test_the_react_build_renders_the_claim_form(browser, published, dist):
    """The built files are served from one origin; API calls are forwarded to Plinth."""
    context = browser.new_context()

    def handle(route):  # the static host a user would deploy `dist/` to, in front of Plinth
        path = route.request.url.removeprefix(ORIGIN).split("?")[0]
        if path.startswith(("/api/", "/a/")):
            route.fulfill(response=route.fetch(url=published["base"] + path))
            return
        file = dist / path.lstrip("/")
        if not file.is_file():
            file = dist / "index.html"  # client-side routes
        route.fulfill(body=file.read_bytes(),
                      content_type=mimetypes.guess_type(file.name)[0] or "text/html")

    context.route(f"{ORIGIN}/**", handle)
    page = context.new_page()
    page.goto(f"{ORIGIN}/claims/new")
    page.get_by_label("Access token").fill(published["token"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="File a claim").wait_for()
    assert page.get_by_text("Tell us what happened, customer").is_visible()
    page.get_by_role("button", name="Submit claim").click()
    page.get_by_text("Please correct the highlighted fields.").wait_for()
    assert page.locator(".pl-field-error", has_text="This field is required.").count() == 6
    context.close()
