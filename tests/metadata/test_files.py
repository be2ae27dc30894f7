"""Export/import as YAML folders: exact round trips, readable files, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plinth.errors import ValidationFailed
from plinth.metadata.definition import content_hash
from plinth.metadata.files import read_folder, to_files, write_folder
from tests.helpers import CLAIMS, make_app, make_tenant, run_cli

DEMO = Path(__file__).parents[2] / "src" / "plinth" / "demo" / "claims"


async def test_export_import_round_trip_is_exact(client, platform, tmp_path):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims", CLAIMS)
    await client.patch(
        "/api/t/acme/apps/claims/draft",
        json=[
            {
                "op": "add",
                "path": "/entities/claim/rules",
                "value": [{"expr": "amount >= 0.0", "message": "multi\nline message"}],
            }
        ],
    )
    files = (await client.get("/api/t/acme/apps/claims/export")).json()["files"]
    assert sorted(files) == ["app.yaml", "entities/claim.yaml", "entities/policyholder.yaml"]
    assert "message: |" in files["entities/claim.yaml"]  # multi-line strings stay readable
    write_folder(tmp_path / "out", files)
    tenant = await platform.tenants.get("acme")
    _, draft = await platform.files.import_folder(tenant, tmp_path / "out", slug="copy")
    original = (await client.get("/api/t/acme/apps/claims/draft")).json()["definition"]
    assert draft.definition == original
    assert content_hash(draft.definition) == content_hash(original)
    again = await platform.files.export(tenant, "copy")
    assert {k: v for k, v in again.items() if k != "app.yaml"} == {
        k: v for k, v in files.items() if k != "app.yaml"
    }


def test_the_demo_folder_is_canonical():
    head, definition = read_folder(DEMO)
    app = {"slug": head["app"], "name": head["name"], "description": head["description"]}
    exported = to_files(app, definition)
    for rel, text in exported.items():
        assert (DEMO / rel).read_text() == text, rel


def test_bad_folders_are_refused_with_the_file(tmp_path):
    with pytest.raises(ValidationFailed) as err:
        read_folder(tmp_path)
    assert err.value.faults[0].path == "app.yaml"
    write_folder(
        tmp_path,
        {"app.yaml": "plinth: 1\napp: x\nname: x\n", "entities/a.yaml": "fields: [unclosed\n"},
    )
    with pytest.raises(ValidationFailed) as err:
        read_folder(tmp_path)
    assert err.value.faults[0].path == "entities/a.yaml"
    assert "line" in err.value.faults[0].message


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_export_import_publish_diff(tmp_path, database_url):
    env = {"PLINTH_DATA_DIR": str(tmp_path / "data"), "PLINTH_DATABASE_URL": database_url}

    def plinth(*args: str) -> str:
        return run_cli(env, *args)

    out = plinth("demo", "--load-only")
    assert "published version 1" in out and "Admin token" in out
    plinth("app", "export", "acme-insurance", "claims", str(tmp_path / "exp"))
    claim = tmp_path / "exp" / "entities" / "claim.yaml"
    claim.write_text(claim.read_text().replace("  amount:", "  claimed_amount:"))
    for page in (tmp_path / "exp" / "pages").glob("*.yaml"):  # pages name the field too
        page.write_text(re.sub(r"\bamount\b", "claimed_amount", page.read_text()))
    # So do the fields the claims workflow's tasks show and its expressions read (all checked
    # at publish like pages).
    flow = tmp_path / "exp" / "workflows" / "claims_process.yaml"
    text = re.sub(r"^(\s*- )amount$", r"\1claimed_amount", flow.read_text(), flags=re.M)
    text = re.sub(r"(show: \[[^\]]*)\bamount\b", r"\1claimed_amount", text)
    flow.write_text(text.replace("vars.record.amount", "vars.record.claimed_amount"))
    plinth("app", "import", "acme-insurance", str(tmp_path / "exp"), "--publish")
    diff = plinth("app", "diff", "acme-insurance", "claims", "--from", "1", "--to", "2")
    assert "entities.claim.fields.claimed_amount (was amount)" in diff
    plinth("app", "rollback", "acme-insurance", "claims", "1")
    assert "●" in plinth("app", "versions", "acme-insurance", "claims").splitlines()[3]
