"""`plinth demo` keeps your work: it loads the demo into an empty data dir only, keeps the
admin token across restarts (a new one only on request) and starts afresh only with --reset."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from plinth.demo import TENANT
from plinth.demo.seed import SEEDED
from plinth.errors import Unauthenticated
from plinth.governance import identity
from plinth.governance.principal import PLATFORM_ADMIN
from plinth.server import Platform
from plinth.settings import Settings
from tests.extensions.conftest import components  # noqa: F401  (plugins built once, cached)
from tests.helpers import run_cli

TOKEN = re.compile(r"Admin token \(shown once\): (plt_\S+)")


async def _authenticates(data_dir: Path, token: str) -> bool:
    platform = Platform(Settings(data_dir=data_dir))
    await platform.start()
    try:
        principal = await platform.tokens.authenticate(token)
        return PLATFORM_ADMIN in principal.roles
    except Unauthenticated:
        return False
    finally:
        await platform.stop()


async def _interrupt_seeding(data_dir: Path) -> None:
    platform = Platform(Settings(data_dir=data_dir))
    await platform.start()
    try:
        await platform.tenants.update_settings(TENANT, SEEDED, "started")
    finally:
        await platform.stop()


@pytest.mark.usefixtures("components")  # the demo's plugin, built once into the shared cache
def test_a_restarted_demo_keeps_the_work_and_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        identity, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    data = tmp_path / "data"
    env = {"PLINTH_DATA_DIR": str(data)}
    run_cli(env, "tenant", "list")  # another command first: it makes no token nobody sees
    # Without the sample records: what is tested here is what a restart keeps.
    first = run_cli(env, "demo", "--load-only", "--no-seed")
    assert "published version 1" in first
    [token] = TOKEN.findall(first)

    # Work done after the load: a field added and published, then one more left in the draft.
    folder = tmp_path / "claims"
    run_cli(env, "app", "export", "acme-insurance", "claims", str(folder))
    claim = folder / "entities" / "claim.yaml"
    fields = "fields:\n"
    claim.write_text(
        claim.read_text().replace(fields, fields + "  adjuster_notes:\n    type: text\n", 1)
    )
    assert "published version 2" in run_cli(
        env, "app", "import", "acme-insurance", str(folder), "--publish"
    )
    claim.write_text(
        claim.read_text().replace(fields, fields + "  second_opinion:\n    type: text\n", 1)
    )
    run_cli(env, "app", "import", "acme-insurance", str(folder))

    again = run_cli(env, "demo", "--load-only", "--no-seed")
    assert "served as you left it" in " ".join(again.split()) and not TOKEN.search(again)
    versions = run_cli(env, "app", "versions", "acme-insurance", "claims")
    assert re.search(r"│ 2 .*●", versions) and "│ 3 " not in versions
    kept = tmp_path / "kept"
    run_cli(env, "app", "export", "acme-insurance", "claims", str(kept))
    draft = (kept / "entities" / "claim.yaml").read_text()
    assert "adjuster_notes:" in draft and "second_opinion:" in draft
    assert asyncio.run(_authenticates(data, token))

    # A new admin token only on request; the earlier one stops working.
    # A seeding run that died half-way (a killed process) is said at the next start, not
    # run again over its own records.
    asyncio.run(_interrupt_seeding(data))
    interrupted = " ".join(run_cli(env, "demo", "--load-only").split())
    assert "sample records did not finish loading" in interrupted and "--reset" in interrupted

    rotated = run_cli(env, "demo", "--load-only", "--no-seed", "--new-admin-token")
    [new] = TOKEN.findall(rotated)
    assert new != token
    assert asyncio.run(_authenticates(data, new))
    assert not asyncio.run(_authenticates(data, token))

    # --reset says what it deletes and loads the demo afresh.
    fresh = run_cli(env, "demo", "--load-only", "--no-seed", "--reset")
    assert f"deleting {data} (its database" in " ".join(fresh.split())  # rich wraps lines
    assert "published version 1" in fresh
    [third] = TOKEN.findall(fresh)
    assert not asyncio.run(_authenticates(data, new)) and asyncio.run(_authenticates(data, third))
    run_cli(env, "app", "export", "acme-insurance", "claims", str(tmp_path / "afresh"))
    assert "adjuster_notes" not in (tmp_path / "afresh" / "entities" / "claim.yaml").read_text()


def test_reset_refuses_a_folder_that_is_not_a_data_dir(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    out = run_cli({"PLINTH_DATA_DIR": str(tmp_path)}, "demo", "--load-only", "--reset", code=2)
    assert "does not look like a Plinth data dir" in " ".join(out.split())
    assert (tmp_path / "notes.txt").read_text() == "mine"
