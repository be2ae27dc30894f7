"""What a customer sees in the portal: the tenant's address opens the portal (not the
designer's sign-in), records and references read by their title field (a claim's reference,
a policy's number) rather than ids, and an empty task inbox reads as an empty inbox."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import ADMIN, SHOTS, USERS, sign_in

pytestmark = pytest.mark.e2e


def _customer_claim(base: str, holder: str) -> dict[str, str]:
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"})
    data = "/api/t/acme/apps/claims/data"
    r = admin.post(
        f"{data}/policy",
        json={
            "number": "DE-424242",
            "holder": holder,
            "product": "home",
            "starts_on": "2026-01-01",
        },
    )
    assert r.status_code == 201, r.text
    policy = r.json()["id"]
    login = {"username": "customer", "password": USERS["customer"]["password"]}
    token = httpx.post(f"{base}/api/auth/acme/login", json=login).json()["access_token"]
    r = httpx.post(
        f"{base}{data}/claim",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "reference": "CL-TITLE-0001",
            "policy": policy,
            "country": "DE",
            "incident_date": "2026-11-02",
            "description": "A pipe burst in the bathroom",
            "amount": "420.00",
        },
    )
    assert r.status_code == 201, r.text
    return {"claim": r.json()["id"], "policy": policy}


def test_the_portal_shows_titles_and_an_empty_inbox(browser, published):
    base = published["base"]
    made = _customer_claim(base, published["holder"])
    page = browser.new_page(viewport={"width": 1100, "height": 900})

    # The tenant's address is its portal: its one published app (its own sign-in), or a list
    # of them when other browser tests of this session published more apps in `acme`.
    r = httpx.get(f"{base}/a/acme/", follow_redirects=False)
    if r.status_code == 302:
        assert r.headers["location"] == "/a/acme/claims/"
    else:
        assert r.status_code == 200 and 'href="/a/acme/claims/"' in r.text, r.text[:500]
    assert httpx.get(f"{base}/a/nobody/").status_code == 404
    page.goto(f"{base}/a/acme/claims/")
    sign_in(page, "customer")
    assert page.url.startswith(f"{base}/a/acme/claims")

    # A claim's page is titled by its reference, and its policy shows the policy's number.
    page.goto(f"{base}/a/acme/claims/claims/{made['claim']}")
    page.get_by_role("heading", name="Claim CL-TITLE-0001").wait_for()
    policy = page.locator('plinth-detail [data-field="policy"]')
    policy.get_by_text("DE-424242").wait_for()
    assert made["claim"] not in page.locator("main, body").first.inner_text()
    assert made["policy"] not in policy.inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "portal-claim-titles.png"), full_page=True)

    # A customer has no tasks: the inbox says so, it does not refuse.
    page.goto(f"{base}/a/acme/claims/tasks")
    page.get_by_text("No open tasks.").wait_for()
    assert page.locator(".pl-inbox .pl-error").count() == 0
    assert "You may not" not in page.locator("body").inner_text()
    page.close()
