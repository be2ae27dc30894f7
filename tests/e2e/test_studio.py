"""The IDE as an analyst and an administrator use it, signing in with a password (Chromium).

An analyst builds an app from nothing — two related entities, a page with a table and a form
on the canvas, a two-step approval without JSON — publishes it, and a portal user files a
request that the workflow picks up. An administrator creates a user, puts them in a group,
disables them, and finds each step in the audit viewer. One server and one browser.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.conftest import SHOTS
from tests.e2e.test_designer import ARGS, CHROMIUM, Server
from tests.e2e.test_designer import pytestmark as needs_browser

pytestmark = [needs_browser]
T = "studio"
PEOPLE = {
    "dana": {"password": "dana-designs-42", "roles": ["designer"], "attrs": {"country": "DE"}},
    "olga": {"password": "olga-owns-4242", "roles": ["owner"], "attrs": {"country": "DE"}},
    "pat": {"password": "pat-requests-42", "roles": ["analyst"], "attrs": {"country": "DE"}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("studio")
    s = Server(f"sqlite+aiosqlite:///{data}/plinth.db", data / "files")
    s.env["PLINTH_EMBEDDED_WORKER"] = "true"  # the published workflow runs
    s.start()
    try:
        with httpx.Client(
            base_url=s.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as http:
            assert http.post("/api/tenants", json={"slug": T, "name": "Studio"}).status_code == 201
            for name, spec in PEOPLE.items():
                r = http.post(f"/api/t/{T}/users", json={"username": name, **spec})
                assert r.status_code == 201, r.text
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def sign_in(browser: object, server: Server, who: str, at: str = "") -> object:
    """A new browser context at the IDE, signed in with `who`'s password."""
    page = browser.new_context(viewport={"width": 1500, "height": 900}).new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(15000)
    page.goto(f"{server.url}/#/t/{T}{at}")
    page.fill("#signin-username", who)
    page.fill("#signin-password", "wrong password")
    page.click("#signin")
    page.wait_for_selector("#signin-error:has-text('Wrong username or password')")
    page.fill("#signin-password", PEOPLE[who]["password"])
    page.click("#signin")
    page.wait_for_selector(f"#who:has-text('{who}')")
    return page


def shot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))  # type: ignore[attr-defined]


def draft(server: Server, app: str) -> dict:  # type: ignore[type-arg]
    r = httpx.get(
        f"{server.url}/api/t/{T}/apps/{app}/draft",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    return r.json()["definition"]  # type: ignore[no-any-return]


def wait_draft(page: object, server: Server, app: str, check: object) -> dict:  # type: ignore[type-arg]
    """The draft once `check(draft)` holds (the IDE's edits arrive through the sync room)."""
    for _ in range(100):
        body = draft(server, app)
        try:
            if check(body):  # type: ignore[operator]
                return body
        except (KeyError, TypeError, IndexError):
            pass
        page.wait_for_timeout(100)  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / "studio-failure.png"))  # type: ignore[attr-defined]
    raise AssertionError(f"the draft never got there: {body}")


def add_entity(page: object, name: str, fields: list[tuple[str, str]]) -> None:
    p = page
    p.fill("#new-entity", name)  # type: ignore[attr-defined]
    p.click("#add-entity")  # type: ignore[attr-defined]
    p.wait_for_selector(f"li[data-entity='{name}'].active")  # type: ignore[attr-defined]
    for field, type_ in fields:
        p.fill("#new-field", field)  # type: ignore[attr-defined]
        p.click("#add-field")  # type: ignore[attr-defined]
        row = f"tr[data-field='{field}']"
        p.wait_for_selector(row)  # type: ignore[attr-defined]
        p.select_option(f"{row} select.field-type", type_)  # type: ignore[attr-defined]
        p.check(f"{row} input.field-required")  # type: ignore[attr-defined]


def drop(page: object, kind: str) -> str:
    """Drag a component from the palette into the page's root stack; its id."""
    p = page
    p.drag_and_drop(f".palette-item[data-kind='{kind}']", "#canvas .dropzone[data-drop='root']")  # type: ignore[attr-defined]
    p.wait_for_selector(f"#canvas .comp[data-kind='{kind}']")  # type: ignore[attr-defined]
    return p.get_attribute("#props", "data-for")  # type: ignore[attr-defined,no-any-return]


def test_an_analyst_builds_an_app_and_a_portal_user_uses_it(
    server: Server, browser: object
) -> None:
    p = sign_in(browser, server, "dana")
    # an app from nothing
    p.fill("#new-app-slug", "leave")  # type: ignore[attr-defined]
    p.fill("#new-app-name", "Leave requests")  # type: ignore[attr-defined]
    p.click("#create-app")  # type: ignore[attr-defined]
    p.wait_for_selector("#status[data-synced='yes']")  # type: ignore[attr-defined]
    # two related entities
    add_entity(p, "employee", [("full_name", "string")])
    p.select_option("#entity-title-field", "full_name")  # type: ignore[attr-defined]
    add_entity(p, "request", [("days", "integer"), ("employee", "reference")])
    p.click("[data-constraints='employee']")  # type: ignore[attr-defined]
    p.select_option("[data-constraint='entity'] select", "employee")  # type: ignore[attr-defined]
    p.click("[data-constraints='employee']")  # type: ignore[attr-defined]
    wait_draft(
        p,
        server,
        "leave",
        lambda d: (
            d["entities"]["request"]["fields"]["employee"]["entity"] == "employee"
            and d["entities"]["employee"]["title_field"] == "full_name"
        ),
    )

    # a page on the canvas: a table of requests and a form that files one
    p.click("#editor-pages")  # type: ignore[attr-defined]
    p.fill("#new-page", "requests")  # type: ignore[attr-defined]
    p.click("#add-page")  # type: ignore[attr-defined]
    p.wait_for_selector("#canvas .comp[data-comp='root']")  # type: ignore[attr-defined]
    table = drop(p, "table")
    p.select_option(f"select[data-key='{table}.props.entity']", "request")  # type: ignore[attr-defined]
    form = drop(p, "form")
    p.select_option(f"select[data-key='{form}.props.entity']", "request")  # type: ignore[attr-defined]
    p.check(f"[data-key='{form}.props.fields'] input[data-option='days']")  # type: ignore[attr-defined]
    p.check(f"[data-key='{form}.props.fields'] input[data-option='employee']")  # type: ignore[attr-defined]
    # after a successful save the table reloads: an action picked from lists, no JSON
    p.select_option("select[data-add-action='success']", "refresh")  # type: ignore[attr-defined]
    p.click("[data-add-event='success']")  # type: ignore[attr-defined]
    p.select_option(f"select[data-key='{form}.events.success.0.component']", table)  # type: ignore[attr-defined]
    # the canvas renders the portal's own form with the entity's fields
    p.wait_for_selector(f"#canvas .comp[data-comp='{form}'] plinth-form label:has-text('days')")  # type: ignore[attr-defined]
    # a binding naming a field the entity lacks is flagged as it is typed
    p.click(f"#canvas .comp[data-comp='{table}']")  # type: ignore[attr-defined]
    p.fill(f"input[data-expr='{table}.props.filter']", "row.dayz > 3")  # type: ignore[attr-defined]
    p.wait_for_selector("#props .expr-errors .error:has-text('row.dayz is not defined')")  # type: ignore[attr-defined]
    p.fill(f"input[data-expr='{table}.props.filter']", "")  # type: ignore[attr-defined]
    wait_draft(
        p,
        server,
        "leave",
        lambda d: (
            d["pages"]["requests"]["components"][form]["props"]["fields"] == ["days", "employee"]
            and d["pages"]["requests"]["components"][form]["events"]
            == {"success": [{"type": "refresh", "component": table}]}
        ),
    )

    # a two-step approval, started by each new request, without typing JSON
    p.click("#editor-workflows")  # type: ignore[attr-defined]
    p.fill("#new-workflow", "approval")  # type: ignore[attr-defined]
    p.click("#add-workflow")  # type: ignore[attr-defined]
    p.select_option("select[data-key='start.entity']", "request")  # type: ignore[attr-defined]
    # node types come from the server's registries (GET /api/palette), retention included
    p.wait_for_selector("#new-node-type option[value='retention']", state="attached")  # type: ignore[attr-defined]
    for node, then in (("hr", "done"), ("manager", "hr")):
        p.fill("#new-node-name", node)  # type: ignore[attr-defined]
        p.select_option("#new-node-type", "approval")  # type: ignore[attr-defined]
        p.click("#add-node")  # type: ignore[attr-defined]
        p.wait_for_selector(f"#node-props[data-for='{node}']")  # type: ignore[attr-defined]
        p.select_option(f"select[data-key='{node}.approvers.0.role']", "analyst")  # type: ignore[attr-defined]
        p.select_option(f"select[data-key='{node}.next']", then)  # type: ignore[attr-defined]
        p.select_option(f"select[data-key='{node}.form.entity']", "request")  # type: ignore[attr-defined]
        p.check(f"[data-key='{node}.form.show'] input[data-option='days']")  # type: ignore[attr-defined]
    # the node says what is missing until it is given
    p.wait_for_selector("g.wf-node[data-node='hr'].invalid .node-error")  # type: ignore[attr-defined]
    p.click("g.wf-node[data-node='hr']")  # type: ignore[attr-defined]
    p.fill("input[data-expr='hr.form.record']", "vars.record.id")  # type: ignore[attr-defined]
    p.press("input[data-expr='hr.form.record']", "Enter")  # type: ignore[attr-defined]
    p.wait_for_selector(
        "g.wf-node[data-node='hr'] .node-error title:not(:has-text('form.record'))",
        state="attached",
    )  # type: ignore[attr-defined]
    p.click("g.wf-node[data-node='manager']")  # type: ignore[attr-defined]
    expr = "input[data-expr='manager.form.record']"
    p.fill(expr, "vars.record.i")  # type: ignore[attr-defined]
    p.wait_for_selector("li[data-completion='vars.record.id']")  # type: ignore[attr-defined]
    p.press(expr, "Tab")  # type: ignore[attr-defined]
    p.press(expr, "Enter")  # type: ignore[attr-defined]
    p.fill("input[data-key='manager.due']", "24")  # type: ignore[attr-defined]
    p.press("input[data-key='manager.due']", "Enter")  # type: ignore[attr-defined]
    p.click("#add-escalation")  # type: ignore[attr-defined]
    p.select_option("select[data-key='manager.escalate.to.role']", "owner")  # type: ignore[attr-defined]
    p.click("#set-first")  # type: ignore[attr-defined]
    p.wait_for_selector("g.wf-node.invalid", state="detached")  # type: ignore[attr-defined]
    # nodes are dragged where the analyst wants them; the place is saved in the draft
    node = p.locator("g.wf-node[data-node='manager']")  # type: ignore[attr-defined]
    box = node.bounding_box()
    p.mouse.move(box["x"] + 20, box["y"] + 20)  # type: ignore[attr-defined]
    p.mouse.down()  # type: ignore[attr-defined]
    p.mouse.move(box["x"] + 60, box["y"] + 180, steps=5)  # type: ignore[attr-defined]
    p.mouse.up()  # type: ignore[attr-defined]
    body = wait_draft(
        p,
        server,
        "leave",
        lambda d: (
            d["workflows"]["approval"]["first"] == "manager"
            and "ui" in d["workflows"]["approval"]["nodes"]["manager"]
            and d["workflows"]["approval"]["nodes"]["manager"]["escalate"]["to"]["role"] == "owner"
            and d["workflows"]["approval"]["nodes"]["manager"]["form"].get("record")
            == "vars.record.id"
        ),
    )
    manager = body["workflows"]["approval"]["nodes"]["manager"]
    assert manager["approvers"] == [{"role": "analyst"}] and manager["next"] == "hr"
    assert manager["due"] == 24 * 3600 and manager["ui"]["y"] > 100
    assert body["workflows"]["approval"]["start"][0] == {
        "type": "record",
        "entity": "request",
        "event": "created",
    }
    p.click("g.wf-node[data-node='manager']")  # type: ignore[attr-defined]
    shot(p, "studio-workflow.png")

    p.fill("#publish-message", "first version")  # type: ignore[attr-defined]
    p.click("#publish")  # type: ignore[attr-defined]
    p.wait_for_selector("#publish-result .ok:has-text('Published version 1')")  # type: ignore[attr-defined]

    # a portal user files a request; the table lists it and the approval waits for a manager
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as http:
        r = http.post(f"/api/t/{T}/apps/leave/data/employee", json={"full_name": "Pat Lee"})
        assert r.status_code == 201, r.text
    portal = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()  # type: ignore[attr-defined]
    portal.set_default_timeout(15000)
    portal.goto(f"{server.url}/a/{T}/leave/requests")
    portal.get_by_label("Username").fill("pat")
    portal.get_by_label("Password").fill(PEOPLE["pat"]["password"])
    portal.get_by_role("button", name="Sign in").click()
    portal.locator(".pl-user", has_text="pat").wait_for()
    # the reference shows the employee's name (the title field chosen in the model), not an id
    portal.locator("plinth-form select").select_option(label="Pat Lee")
    portal.locator("plinth-form input").first.fill("3")
    portal.get_by_role("button", name="Save").click()
    # the form's success action refreshes the table: the request is listed without a reload
    portal.locator("plinth-table td", has_text="3").first.wait_for()
    shot(portal, "studio-portal.png")
    # the request started the approval: its first step waits in an analyst's inbox
    tasks: list[dict] = []  # type: ignore[type-arg]
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as http:
        for _ in range(100):
            tasks = http.get(f"/api/t/{T}/tasks").json()
            if tasks:
                break
            portal.wait_for_timeout(100)
    assert [(t["workflow"], t["kind"], t["assignee"]) for t in tasks] == [
        ("approval", "approval", {"role": "analyst"})
    ], tasks
    # back in the IDE, the canvas shows the page with the portal user's request in it
    p.click("#editor-pages")  # type: ignore[attr-defined]
    p.locator("#canvas plinth-table td", has_text="3").first.wait_for()  # type: ignore[attr-defined]
    shot(p, "studio-page-canvas.png")


def test_an_administrator_manages_a_user_and_finds_it_in_the_audit(
    server: Server, browser: object
) -> None:
    p = sign_in(browser, server, "olga")
    p.click("#nav-admin")  # type: ignore[attr-defined]
    p.wait_for_selector("#users tr[data-user='dana']")  # type: ignore[attr-defined]
    p.fill("#invite-username", "nora")  # type: ignore[attr-defined]
    p.select_option("#invite-role", "analyst")  # type: ignore[attr-defined]
    p.fill("#invite-country", "fr")  # type: ignore[attr-defined]
    p.click("#invite")  # type: ignore[attr-defined]
    p.wait_for_selector("#admin-notice:has-text('Invited nora')")  # type: ignore[attr-defined]
    # nora follows the invite link, chooses her password and signs in
    link = p.inner_text("#admin-notice").split("send them ")[1].strip()  # type: ignore[attr-defined]
    nora = browser.new_context().new_page()  # type: ignore[attr-defined]
    nora.set_default_timeout(15000)
    nora.goto(link)
    nora.fill("#accept-password", "nora-joins-2026")
    nora.fill("#accept-again", "nora-joins-2026")
    nora.click("#accept")
    nora.fill("#signin-username", "nora")
    nora.fill("#signin-password", "nora-joins-2026")
    nora.click("#signin")
    nora.wait_for_selector("#who:has-text('nora')")
    p.click("#users tr[data-user='nora'] a")  # type: ignore[attr-defined]
    p.fill("#user-groups", "claims-team")  # type: ignore[attr-defined]
    p.click("#save-user")  # type: ignore[attr-defined]
    p.wait_for_selector("#admin-notice:has-text('Saved nora')")  # type: ignore[attr-defined]
    p.click("#toggle-disabled")  # type: ignore[attr-defined]
    p.wait_for_selector("#user-disabled")  # type: ignore[attr-defined]
    # disabled, she is signed out and cannot sign in again
    nora.reload()
    nora.fill("#signin-username", "nora")
    nora.fill("#signin-password", "nora-joins-2026")
    nora.click("#signin")
    nora.wait_for_selector("#signin-error:has-text('Wrong username or password')")
    p.click("#admin-groups")  # type: ignore[attr-defined]
    p.wait_for_selector("#groups tr[data-group='claims-team']")  # type: ignore[attr-defined]
    p.click("#admin-users")  # type: ignore[attr-defined]
    p.wait_for_selector("#users tr[data-user='nora'] td[data-status='disabled']")  # type: ignore[attr-defined]
    p.click("#users tr[data-user='nora'] a")  # type: ignore[attr-defined]
    p.click("#user-audit")  # type: ignore[attr-defined]
    for action in ("user.created", "user.updated", "user.disabled"):
        p.wait_for_selector(f"#audit tr[data-action='{action}']")  # type: ignore[attr-defined]
    # the filters narrow it: only the disabling
    p.fill("#audit-action", "user.disabled")  # type: ignore[attr-defined]
    p.click("#audit-apply")  # type: ignore[attr-defined]
    p.wait_for_selector("#audit tr[data-action='user.created']", state="detached")  # type: ignore[attr-defined]
    assert p.locator("#audit tr[data-action='user.disabled']").count() == 1  # type: ignore[attr-defined]
    shot(p, "studio-audit.png")
