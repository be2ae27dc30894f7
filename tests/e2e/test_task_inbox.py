"""An analyst opens a task from the inbox, fills its form and completes it.

Needs workflows (`plinth.workflows`, another branch); skips, saying why, until it is merged.
"""

from __future__ import annotations

import importlib.util

import httpx
import pytest

from tests.e2e.conftest import ADMIN, SHOTS, sign_in, wait_for_task

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("plinth.workflows") is None
        or importlib.util.find_spec("plinth.runtime") is None,
        reason="workflows and the data runtime are not on this branch",
    ),
]

APP = {
    "entities": {
        "ticket": {
            "fields": {
                "subject": {"type": "string", "required": True},
                "status": {
                    "type": "enum",
                    "values": ["open", "done"],
                    "required": True,
                    "label": "Status",
                },
            }
        }
    },
    "workflows": {
        "triage": {
            "title": "Triage",
            "start": [{"type": "manual"}],
            "first": "review",
            "nodes": {
                "review": {
                    "type": "user_task",
                    "title": "Review the ticket",
                    "assignee": {"role": "analyst"},
                    "form": {"entity": "ticket", "fields": ["status"]},
                    "next": "end",
                },
                "end": {"type": "end"},
            },
        }
    },
    "pages": {
        "inbox": {
            "title": "Inbox",
            "path": "/",
            "nav": True,
            "components": {
                "root": {"kind": "stack", "parent": None},
                "heading": {
                    "kind": "text",
                    "parent": "root",
                    "order": 0,
                    "props": {"text": "My tasks", "variant": "h1"},
                },
                "tasks": {"kind": "task_inbox", "parent": "root", "order": 1},
            },
        }
    },
}


def test_an_analyst_completes_a_task_from_the_inbox(browser, published):
    admin = httpx.Client(base_url=published["base"], headers={"Authorization": f"Bearer {ADMIN}"})
    r = admin.post("/api/t/acme/apps", json={"slug": "helpdesk", "name": "Helpdesk"})
    assert r.status_code == 201, r.text
    r = admin.put("/api/t/acme/apps/helpdesk/draft", json=APP)
    assert r.status_code == 200, r.text
    assert admin.post("/api/t/acme/apps/helpdesk/publish", json={}).status_code == 201
    r = admin.post("/api/t/acme/apps/helpdesk/workflows/triage/instances", json={})
    assert r.status_code == 201, r.text
    instance = r.json()["id"]

    context = browser.new_context(viewport={"width": 1100, "height": 700})
    page = context.new_page()
    page.goto(f"{published['base']}/a/acme/helpdesk/")
    sign_in(page, "analyst")
    task = page.locator(".pl-task", has_text="Review the ticket")
    wait_for_task(page, task)
    task.get_by_role("button", name="Open").click()
    task.get_by_role("button", name="Complete").click()
    assert task.locator('[data-field="status"]').inner_text() == "This field is required."
    page.screenshot(path=str(SHOTS / "portal-inbox.png"), full_page=True)
    task.get_by_label("Status").select_option("done")
    task.get_by_role("button", name="Complete").click()
    # The task leaves the inbox (which lists this app's tasks only, not the demo claims app's)
    # and the instance runs to its end.
    task.wait_for(state="detached")
    page.get_by_text("No open tasks.").wait_for()
    for _ in range(50):
        status = admin.get(f"/api/t/acme/workflow-instances/{instance}").json()["status"]
        if status == "completed":
            break
        page.wait_for_timeout(200)
    assert status == "completed"
    context.close()
