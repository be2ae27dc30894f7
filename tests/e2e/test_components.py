"""Layout, state, bindings, actions and reusable components, rendered by the browser runtime."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import ADMIN, sign_in

pytestmark = pytest.mark.e2e

WIDGETS = {
    "entities": {"note": {"fields": {"title": {"type": "string", "required": True}}}},
    "components": {
        "badge": {
            "props": {
                "type": "object",
                "required": ["label"],
                "properties": {"label": {"type": "string"}},
            },
            "components": {
                "root": {
                    "kind": "text",
                    "parent": None,
                    "props": {"text": "Badge: {{ props.label }}", "variant": "h3"},
                }
            },
        }
    },
    "pages": {
        "board": {
            "title": "Board",
            "path": "/",
            "nav": True,
            "state": {"n": 0, "rate": 2.0},
            "components": {
                "root": {"kind": "stack", "parent": None},
                "count": {
                    "kind": "text",
                    "parent": "root",
                    "order": 1,
                    "props": {"text": "Clicked {{ state.n }} times"},
                },
                "more": {
                    "kind": "button",
                    "parent": "root",
                    "order": 2,
                    "props": {"label": "More"},
                    "events": {
                        "click": [{"type": "set_state", "key": "n", "value": "{{ state.n + 1 }}"}]
                    },
                },
                "rate": {
                    "kind": "text",
                    "parent": "root",
                    "order": 2.5,  # a whole double stays one
                    "props": {"text": "Rate {{ state.rate * 1.5 }}"},
                },
                "secret": {
                    "kind": "text",
                    "parent": "root",
                    "order": 3,
                    "visible": "{{ state.n >= 2 }}",
                    "props": {"text": "Two or more"},
                },
                "tabs": {
                    "kind": "tabs",
                    "parent": "root",
                    "order": 4,
                    "props": {"labels": ["First", "Second"]},
                },
                "one": {
                    "kind": "text",
                    "parent": "tabs",
                    "order": 1,
                    "props": {"text": "Tab one body"},
                },
                "two": {
                    "kind": "component:badge",
                    "parent": "tabs",
                    "order": 2,
                    "props": {"label": "{{ user.roles[0] }}"},
                },
                "go": {
                    "kind": "button",
                    "parent": "root",
                    "order": 5,
                    "props": {"label": "Go"},
                    "events": {"click": [{"type": "navigate", "to": "/other/{{ state.n }}"}]},
                },
            },
        },
        "other": {
            "title": "Other",
            "path": "/other/:n",
            "components": {
                "root": {
                    "kind": "text",
                    "parent": None,
                    "props": {"text": "Other page {{ params.n }}"},
                },
            },
        },
    },
}


def test_state_bindings_tabs_components_and_navigation(browser, published):
    admin = httpx.Client(base_url=published["base"], headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.post("/api/t/acme/apps", json={"slug": "widgets"}).status_code == 201
    r = admin.put("/api/t/acme/apps/widgets/draft", json=WIDGETS)
    assert r.status_code == 200, r.text
    assert admin.post("/api/t/acme/apps/widgets/publish", json={}).status_code == 201

    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{published['base']}/a/acme/widgets/")
    sign_in(page, "analyst")
    page.get_by_text("Clicked 0 times").wait_for()
    assert page.get_by_text("Rate 3").is_visible()
    assert page.get_by_text("Two or more").count() == 0
    page.get_by_role("button", name="More").click()
    page.get_by_role("button", name="More").click()
    page.get_by_text("Clicked 2 times").wait_for()
    assert page.get_by_text("Two or more").is_visible()

    assert page.get_by_text("Tab one body").is_visible()
    page.get_by_role("tab", name="Second").click()
    page.get_by_role("heading", name="Badge: analyst").wait_for()  # a reusable component
    assert page.get_by_text("Tab one body").count() == 0

    page.get_by_role("button", name="Go").click()
    page.get_by_text("Other page 2").wait_for()
    assert page.url.endswith("/a/acme/widgets/other/2")
    page.go_back()
    page.get_by_text("Clicked 0 times").wait_for()  # a fresh page starts from its state
    context.close()
