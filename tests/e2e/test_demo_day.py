"""A day in the demo insurer, in the browser: `plinth demo` as a user starts it, then each of its
people signs in to the portal with the password it printed.

The customer sees only her own policies and claims and files a claim; the German analyst
(in the claims team, so medical notes show) reviews it; the two managers each approve it,
seeing its reference, amount and fraud score; the customer then sees it paid out and closed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import ROOT, wait_for_task
from tests.helpers import free_port

pytestmark = pytest.mark.e2e

TENANT = "acme-insurance"
REFERENCE = "CLM-DE-0100"


class Demo:
    def __init__(self, base: str, passwords: dict[str, str]) -> None:
        self.base, self.passwords = base, passwords

    def portal(self, browser: object, path: str, username: str) -> object:
        """A page of the claims portal in a browser of its own, signed in as `username`."""
        context = browser.new_context(viewport={"width": 1100, "height": 900})  # type: ignore[attr-defined]
        page = context.new_page()
        page.goto(f"{self.base}/a/{TENANT}/claims{path}")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(self.passwords[username])
        page.get_by_role("button", name="Sign in").click()
        page.locator(".pl-user", has_text=username).wait_for()
        return page


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`plinth demo` on a new data dir and a free port, as its README says to start it."""
    subprocess.run(["sh", str(ROOT / "tests" / "pages" / "setup.sh")], check=True, timeout=300)
    data = tmp_path_factory.mktemp("demo-day")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "400"}
    for name in ("PLINTH_DATABASE_URL", "PLINTH_ADMIN_TOKEN", "PLINTH_DATA_DIR"):
        env.pop(name, None)
    out = data / "demo.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plinth.cli.main",
                "demo",
                "--data-dir",
                str(data / "plinth-data"),
                "--port",
                str(port),
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a cold machine builds the plugin first
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"plinth demo did not start:\n{out.read_text()[-3000:]}")
            time.sleep(0.2)
        printed = out.read_text()
        passwords = dict(re.findall(r"user (\w+) \([^)]*\) created, password:\s*(\S+)", printed))
        people = {"ana", "dirk", "lucia", "maria", "max", "bea", "olga", "carla"}
        assert set(passwords) == people, printed
        yield Demo(base, passwords)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def references(page: object) -> list[str]:
    """The claim references in the page's claims table, top to bottom."""
    rows = page.locator("plinth-table tr.pl-row td:first-child")  # type: ignore[attr-defined]
    return [r.strip() for r in rows.all_inner_texts()]


def test_each_demo_person_works_a_claim_through_the_portal(browser, demo: Demo) -> None:
    # Carla, a German policyholder, sees her own three claims and nothing of anyone else.
    carla = demo.portal(browser, "/claims", "carla")
    carla.locator("plinth-table tr.pl-row", has_text="CLM-DE-0003").wait_for()
    assert sorted(references(carla)) == ["CLM-DE-0001", "CLM-DE-0002", "CLM-DE-0003"]
    row = carla.locator("plinth-table tr.pl-row", has_text="CLM-DE-0002")
    assert "rejected" in row.inner_text()
    # She files a claim: the policy list offers her two policies, no one else's.
    carla.goto(f"{demo.base}/a/{TENANT}/claims/claims/new")
    policy = carla.get_by_label("Policy")
    policy.locator("option", has_text="DE-200101").wait_for(state="attached")
    options = [o.strip() for o in policy.locator("option").all_inner_texts()]
    assert sorted(options) == ["DE-200101", "DE-200102", "—"]
    carla.get_by_label("Claim reference").fill(REFERENCE)
    policy.select_option(label="DE-200101")
    carla.get_by_label("Country of loss").select_option("DE")
    carla.get_by_label("Date of incident").fill("2026-04-02")
    carla.get_by_label("What happened").fill("A lorry scraped the parked car: door and wing.")
    carla.get_by_label("Claimed amount").fill("12480")
    carla.get_by_role("button", name="Submit claim").click()
    carla.wait_for_url(f"**/a/{TENANT}/claims/claims/*")
    carla.get_by_text(REFERENCE).first.wait_for()
    carla.locator("fraud-badge").get_by_text(re.compile(r"Fraud risk: 20 \(low\)")).wait_for()

    # Dirk, the German analyst in the claims team: the medical notes of a seeded claim show
    # on its review; then Carla's claim reaches his inbox with its facts, and he approves it.
    dirk = demo.portal(browser, "/tasks", "dirk")
    health = dirk.locator(".pl-task", has_text="CLM-DE-0004")
    health.wait_for()
    health.get_by_role("button", name="Open").click()
    notes = health.locator('dd[data-field="health_notes"]')
    assert notes.inner_text().startswith("Distal radius fracture")
    health.get_by_role("button", name="Close").click()
    review = dirk.locator(".pl-task", has_text=REFERENCE)
    wait_for_task(dirk, review)
    assert "Review claim" in review.inner_text()
    review.get_by_role("button", name="Open").click()
    assert review.locator('dd[data-field="reference"]').inner_text() == REFERENCE
    assert review.locator('dd[data-field="amount"]').inner_text() == "12480.00"
    assert review.locator('dd[data-field="fraud_score"]').inner_text() == "20"
    assert review.locator('dd[data-field="status"]').count() == 0  # not among the facts shown
    review.get_by_label("Status").select_option("approved")
    review.get_by_role("button", name="Complete").click()
    review.wait_for(state="detached")

    # Maria and Max, the claims managers, each approve it; the task shows what they decide on.
    for manager in ("maria", "max"):
        page = demo.portal(browser, "/tasks", manager)
        task = page.locator(".pl-task", has_text=REFERENCE).first
        wait_for_task(page, task)
        assert "Approve high-value claim" in task.inner_text()
        task.get_by_role("button", name="Open").click()
        assert task.locator('dd[data-field="reference"]').inner_text() == REFERENCE
        assert task.locator('dd[data-field="amount"]').inner_text() == "12480.00"
        assert task.locator('dd[data-field="fraud_score"]').inner_text() == "20"
        task.get_by_label("Comment").fill(f"{manager}: estimate and photos check out")
        task.get_by_role("button", name="Approve").click()
        # One vote each: once she has voted, no approval of this claim is hers any more.
        page.locator(".pl-task", has_text=REFERENCE).first.wait_for(state="detached")
        page.context.close()

    # The claim is paid out and closed; Carla sees it in her list.
    carla.goto(f"{demo.base}/a/{TENANT}/claims/claims")
    row = carla.locator("plinth-table tr.pl-row", has_text=REFERENCE)
    for _ in range(50):
        row.wait_for()
        if "closed" in row.inner_text():
            break
        carla.reload()
    assert "closed" in row.inner_text()
    assert len(references(carla)) == 4
    for page in (carla, dirk):
        page.context.close()
