"""`plinth compliance` from a shell: report, fix (dry run, then --apply), waive."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_report_fix_and_waive(tmp_path, database_url):
    env = {"PLINTH_DATA_DIR": str(tmp_path / "data"), "PLINTH_DATABASE_URL": database_url}

    def plinth(*args: str, code: int = 0) -> str:
        return run_cli(env, *args, code=code)

    plinth("demo", "--load-only")
    out = plinth("compliance", "report", "acme-insurance", "--html", str(tmp_path / "r.html"))
    assert "acme-insurance: PASS" in out and "claims v1 BR (lgpd, pci_dss): PASS" in out
    assert "LGPD art. 15" in (tmp_path / "r.html").read_text()

    # Drop the retention of policyholders: the report fails, fix shows then applies the patch.
    folder = tmp_path / "exp"
    plinth("app", "export", "acme-insurance", "claims", str(folder))
    path = folder / "entities" / "policyholder.yaml"
    text = path.read_text()
    start = text.index("retention:")
    end = text.index("lawful_basis:")
    path.write_text(text[:start] + text[end:])
    plinth("app", "import", "acme-insurance", str(folder))
    assert "gdpr.retention" in plinth("compliance", "check", "acme-insurance", "claims", code=1)
    dry = plinth("compliance", "fix", "acme-insurance", "claims")
    assert "/entities/policyholder/retention" in dry and "Dry run" in dry
    assert "gdpr.retention" in plinth("compliance", "check", "acme-insurance", "claims", code=1)
    assert "Applied to the draft" in plinth(
        "compliance", "fix", "acme-insurance", "claims", "--apply"
    )
    plinth("compliance", "check", "acme-insurance", "claims")
    out = plinth(
        "compliance",
        "waive",
        "acme-insurance",
        "claims",
        "gdpr.retention",
        "--reason",
        "Legacy archive under review by the DPO",
        "--until",
        "2099-01-01",
        code=2,
    )  # more than a year ahead is refused
    out = plinth("compliance", "profile", "acme-insurance")
    assert json.loads(out)["countries"] == ["DE", "FR", "ES", "BR", "US"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_subject_rights_retention_and_key_rotation(tmp_path, database_url):
    env = {"PLINTH_DATA_DIR": str(tmp_path / "data"), "PLINTH_DATABASE_URL": database_url}

    def plinth(*args: str, code: int = 0) -> str:
        return run_cli(env, *args, code=code)

    plinth("demo", "--load-only")
    out = tmp_path / "ana.json"
    assert "Wrote 0 records" in plinth(
        "compliance", "subject", "export", "acme-insurance", "ana@example.com", "--out", str(out)
    )
    assert json.loads(out.read_text())["apps"] == {}
    assert "cannot be undone" in plinth(
        "compliance", "subject", "erase", "acme-insurance", "ana@example.com", code=2
    )
    erased = json.loads(
        plinth("compliance", "subject", "erase", "acme-insurance", "ana@example.com", "--yes")
    )
    assert erased["records"] == 0 and len(erased["subject_ref"]) == 40
    run = json.loads(plinth("compliance", "retention", "acme-insurance"))
    assert {e["entity"] for e in run["apps"]["claims"]} == {"policyholder", "claim", "payout"}
    assert json.loads(plinth("compliance", "rotate-keys", "acme-insurance"))["version"] == 2
