"""The React export of the demo app renders the same page as the portal, against a real server."""

from __future__ import annotations

import mimetypes
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN, sign_in, wait_for_task
from tests.pages.react_export import built_demo

ORIGIN = "http://react.test"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_demo(tmp_path_factory) / "dist"  # the build tests/pages checks, shared


def _context(browser, published, dist):
    """The built files served from one origin; API calls are forwarded to Plinth."""
    context = browser.new_context()

    def handle(route):  # the static host a user would deploy `dist/` to, in front of Plinth
        rest = route.request.url.removeprefix(ORIGIN)
        path = rest.split("?")[0]
        if path.startswith(("/api/", "/a/")):
            route.fulfill(response=route.fetch(url=published["base"] + rest))
            return
        file = dist / path.lstrip("/")
        if not file.is_file():
            file = dist / "index.html"  # client-side routes
        route.fulfill(
            body=file.read_bytes(), content_type=mimetypes.guess_type(file.name)[0] or "text/html"
        )

    context.route(f"{ORIGIN}/**", handle)
    return context


def test_the_react_build_renders_the_claim_form(browser, published, dist):
    context = _context(browser, published, dist)
    page = context.new_page()
    page.goto(f"{ORIGIN}/claims/new")
    sign_in(page, "customer")
    page.get_by_role("heading", name="File a claim").wait_for()
    assert page.get_by_text("Tell us what happened, customer").is_visible()
    page.get_by_role("button", name="Submit claim").click()
    page.get_by_text("Please correct the highlighted fields.").wait_for()
    assert page.locator(".pl-field-error", has_text="This field is required.").count() == 6
    context.close()


INTAKE = {
    "workflows": {
        "intake": {
            "title": "Intake",
            "start": [{"type": "manual"}],
            "first": "assess",
            "nodes": {
                "assess": {
                    "type": "user_task",
                    "title": "Assess the intake",
                    "assignee": {"role": "analyst"},
                    "output": "assessment",
                    "form": {
                        "schema": {
                            "type": "object",
                            "required": ["severity", "note"],
                            "properties": {
                                "severity": {"title": "Severity", "enum": ["low", "high"]},
                                "note": {"title": "Note", "type": "string", "minLength": 5},
                                "hours": {"title": "Hours", "type": "integer", "minimum": 0},
                            },
                        }
                    },
                    "next": "sign_off",
                },
                "sign_off": {
                    "type": "approval",
                    "title": "Sign off the intake",
                    "approvers": [{"role": "analyst"}],
                    "rule": "any",
                    "output": "sign_off",
                    "next": "end",
                },
                "end": {"type": "end"},
            },
        }
    },
}


def test_the_react_inbox_completes_a_task_with_its_form_then_approves(browser, published, dist):
    admin = httpx.Client(base_url=published["base"], headers={"Authorization": f"Bearer {ADMIN}"})
    # The build is the claims app's, whose inbox lists the claims app's tasks only: the
    # workflow joins that app (a manual start; nothing else there changes).
    draft = admin.get("/api/t/acme/apps/claims/draft").json()["definition"]
    draft["workflows"] = {**draft.get("workflows", {}), **INTAKE["workflows"]}
    assert admin.put("/api/t/acme/apps/claims/draft", json=draft).status_code == 200
    assert admin.post("/api/t/acme/apps/claims/publish", json={}).status_code == 201
    r = admin.post("/api/t/acme/apps/claims/workflows/intake/instances", json={})
    assert r.status_code == 201, r.text
    instance = r.json()["id"]

    context = _context(browser, published, dist)
    page = context.new_page()
    page.goto(f"{ORIGIN}/tasks")
    sign_in(page, "analyst")
    task = page.locator(".pl-task", has_text="Assess the intake")
    wait_for_task(page, task)
    task.get_by_role("button", name="Open").click()
    task.get_by_label("Note").fill("bad")
    task.get_by_label("Hours").fill("-1")
    task.get_by_role("button", name="Complete").click()
    assert task.locator('[data-field="severity"]').inner_text() == "This field is required."
    assert task.locator('[data-field="note"]').inner_text() == "At least 5 characters."
    assert task.locator('[data-field="hours"]').inner_text() == "Must be at least 0."
    task.get_by_label("Severity").select_option("high")
    task.get_by_label("Note").fill("Water damage, two rooms")
    task.get_by_label("Hours").fill("3")
    task.get_by_role("button", name="Complete").click()
    task.wait_for(state="detached")

    approval = page.locator(".pl-task", has_text="Sign off the intake")
    wait_for_task(page, approval)
    approval.get_by_role("button", name="Open").click()
    approval.get_by_label("Comment").fill("Checked the photos")
    approval.get_by_role("button", name="Approve").click()
    approval.wait_for(state="detached")
    for _ in range(50):
        done = admin.get(f"/api/t/acme/workflow-instances/{instance}").json()
        if done["status"] == "completed":
            break
        page.wait_for_timeout(200)
    assert done["status"] == "completed"
    assert "Water damage" in str(done) and "Checked the photos" in str(done)
    context.close()
