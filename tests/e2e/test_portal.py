"""End users in the portal: sign in with a password, see the generated form, get validation
errors; stay signed in across reloads (cookie session) and sign out; or sign in with the
tenant's OpenID Connect provider (a real local one)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider_mock import User, run_server_in_thread

from tests.e2e.conftest import ADMIN, SHOTS, sign_in

pytestmark = pytest.mark.e2e


def test_sign_in_then_the_form_validates_in_the_browser(browser, published):
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    page.goto(f"{published['base']}/a/acme/claims/claims/new")
    page.get_by_label("Username").fill("customer")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong username or password.").wait_for()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "portal-sign-in.png"))
    assert page.get_by_role("link", name="Sign in with").count() == 0  # no OIDC configured

    sign_in(page, "customer")
    page.get_by_role("heading", name="File a claim").wait_for()
    assert page.get_by_text("Tell us what happened, customer").is_visible()  # a {{ }} binding
    assert page.title() == "File a claim · Claims"
    # The refresh token is an HttpOnly cookie: nothing a script can read holds a credential.
    assert page.evaluate("document.cookie") == ""
    stored = "Object.keys(sessionStorage).length + Object.keys(localStorage).length"
    assert page.evaluate(stored) == 0
    cookie = next(c for c in context.cookies() if c["name"] == "plinth_refresh")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # Nothing filled in: every required field says so, and nothing is sent.
    sent: list[str] = []
    page.on("request", lambda req: sent.append(req.url) if req.method == "POST" else None)
    page.get_by_role("button", name="Submit claim").click()
    page.get_by_text("Please correct the highlighted fields.").wait_for()
    required = page.locator(".pl-field-error", has_text="This field is required.")
    assert required.count() == 6  # currency has a default
    assert sent == []

    # Constraints from the entity's schema: minLength and min.
    page.get_by_label("Claim reference").fill("CL-2026-0001")
    page.get_by_label("What happened").fill("Too short")
    page.get_by_label("Claimed amount").fill("-5")
    page.get_by_role("button", name="Submit claim").click()
    assert page.locator('[data-field="description"]').inner_text() == "At least 10 characters."
    assert page.locator('[data-field="amount"]').inner_text() == "Must be at least 0."
    assert page.locator('[data-field="reference"]').count() == 0
    assert page.get_by_label("What happened").get_attribute("aria-invalid") == "true"
    page.screenshot(path=str(SHOTS / "portal-file-claim.png"), full_page=True)

    # A reload keeps the session (the cookie renews the in-memory access token).
    page.reload()
    page.get_by_role("heading", name="File a claim").wait_for()
    assert page.get_by_label("Password").count() == 0

    # Navigation: the claims page is a separate custom element, routed client-side.
    page.get_by_role("link", name="Claims").click()
    page.get_by_role("heading", name="Claims").wait_for()
    assert page.url.endswith("/a/acme/claims/claims")
    assert page.locator("plinth-table table th").first.inner_text() == "Claim reference"

    # Sign out revokes the session: a reload asks to sign in again.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Username").wait_for()
    page.reload()
    page.get_by_label("Username").wait_for()
    context.close()


def test_the_claims_table_is_filtered_by_the_policy_in_the_address(browser, published):
    """The table's filter binds the `policy` query parameter into the data API's filter."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{published['base']}/a/acme/claims/claims?policy=pol_42")

    def table_query(req) -> bool:  # the chart queries the same entity, without a sort
        return "/data/claim?" in req.url and "sort=" in req.url

    with page.expect_request(table_query) as listed:
        sign_in(page, "analyst")
    query = parse_qs(urlsplit(listed.value.url).query)
    assert query["filter"] == ["policy eq 'pol_42'"]
    assert query["sort"] == ["-created_at"] and query["limit"] == ["20"]
    assert listed.value.headers["authorization"].startswith("Bearer ey")  # the session's JWT
    with page.expect_request(table_query) as unfiltered:
        page.goto(f"{published['base']}/a/acme/claims/claims")
    assert "filter" not in parse_qs(urlsplit(unfiltered.value.url).query)
    context.close()


HELLO = {
    "pages": {
        "hello": {
            "title": "Hello",
            "path": "/",
            "nav": True,
            "components": {
                "root": {
                    "kind": "text",
                    "parent": None,
                    "props": {"text": "Hello {{ user.name }} from {{ user.attrs.country }}"},
                },
            },
        }
    }
}


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    users = [
        User(
            sub="olga",
            claims={"email": "olga@acme.test", "groups": ["acme-analysts"], "country": "DE"},
        )
    ]
    with run_server_in_thread(user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


def test_sign_in_with_the_tenants_provider(browser, server, provider):
    admin = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {ADMIN}"})
    r = admin.post(
        "/api/tenants",
        json={
            "slug": "sso",
            "name": "SSO",
            "settings": {
                "oidc": {
                    "issuer": provider,
                    "client_id": "plinth",
                    "client_secret": "s3cret",
                    "label": "Acme SSO",
                    "role_map": {"acme-analysts": "analyst"},
                    "attr_claims": {"country": "country"},
                }
            },
        },
    )
    assert r.status_code == 201, r.text
    assert admin.post("/api/t/sso/apps", json={"slug": "hello"}).status_code == 201
    assert admin.put("/api/t/sso/apps/hello/draft", json=HELLO).status_code == 200
    assert admin.post("/api/t/sso/apps/hello/publish", json={}).status_code == 201

    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server}/a/sso/hello/")
    page.get_by_role("link", name="Sign in with Acme SSO").click()
    page.locator("input[name=sub]").fill("olga")  # the provider's own login page
    page.get_by_role("button", name="Authorize").click()
    page.get_by_text("Hello olga@acme.test from DE").wait_for()
    assert page.url == f"{server}/a/sso/hello/"
    context.close()
