"""End users in the portal: sign in, see the generated form, get validation errors."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.conftest import ROOT

SCREENSHOT = ROOT / "docs" / "screenshots" / "portal.png"

pytestmark = pytest.mark.e2e


def test_sign_in_then_the_form_validates_in_the_browser(browser, published):
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.goto(f"{published['base']}/a/acme/claims/claims/new")
    page.get_by_label("Access token").fill("plt_not_a_real_token_0000000000")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("That token was not accepted.").wait_for()

    page.get_by_label("Access token").fill(published["token"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="File a claim").wait_for()
    assert page.get_by_text("Tell us what happened, customer").is_visible()  # a {{ }} binding
    assert page.title() == "File a claim · Claims"

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
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Navigation: the claims page is a separate custom element, routed client-side.
    page.get_by_role("link", name="Claims").click()
    page.get_by_role("heading", name="Claims").wait_for()
    assert page.url.endswith("/a/acme/claims/claims")
    assert page.locator("plinth-table table th").first.inner_text() == "Claim reference"
    page.close()


def test_first_render_of_a_page_is_under_a_second(browser, published):
    context = browser.new_context()
    context.add_init_script(
        f"sessionStorage.setItem('plinth.token.acme', {published['token']!r})")
    page = context.new_page()
    start = time.perf_counter()
    page.goto(f"{published['base']}/a/acme/claims/claims/new")
    page.get_by_label("What happened").wait_for()
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"first render took {elapsed:.2f}s"
    context.close()



def test_the_claims_table_is_filtered_by_the_policy_in_the_address(browser, published):
    """The table's filter binds the `policy` query parameter into the data API's filter."""
    context = browser.new_context()
    context.add_init_script(
        f"sessionStorage.setItem('plinth.token.acme', {published['token']!r})")
    page = context.new_page()
    def table_query(req) -> bool:  # the chart queries the same entity, without a sort
        return "/data/claim?" in req.url and "sort=" in req.url

    with page.expect_request(table_query) as listed:
        page.goto(f"{published['base']}/a/acme/claims/claims?policy=pol_42")
    query = parse_qs(urlsplit(listed.value.url).query)
    assert query["filter"] == ["policy eq 'pol_42'"]
    assert query["sort"] == ["-created_at"] and query["limit"] == ["20"]
    assert listed.value.headers["authorization"] == f"Bearer {published['token']}"
    with page.expect_request(table_query) as unfiltered:
        page.goto(f"{published['base']}/a/acme/claims/claims")
    assert "filter" not in parse_qs(urlsplit(unfiltered.value.url).query)
    context.close()
