"""Runtime enforcement through the data API: encryption at rest, masking, subject rights,
retention run by a workflow, key rotation, all audited."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from plinth.errors import ValidationFailed
from plinth.server import Platform
from tests.helpers import as_user, make_app, make_tenant, publish, token_for

PAN = "4111111111111111"
PAN2 = "5500005555555559"


def shop() -> dict[str, Any]:
    """Customers (the subject, by e-mail) and their cards (PAN encrypted and masked)."""
    return {
        "entities": {
            "customer": {
                "fields": {
                    "email": {"type": "email", "classification": "pii"},
                    "full_name": {"type": "string", "classification": "pii"},
                    "country": {"type": "string", "classification": "none"},
                    "notes": {"type": "text", "classification": "pii", "encrypted": True},
                },
                "subject": {"key_field": "email", "country_field": "country"},
                "retention": {"days": 30, "action": "anonymise", "field": "created_at"},
            },
            "card": {
                "fields": {
                    "customer": {"type": "reference", "entity": "customer", "required": True},
                    "card_number": {
                        "type": "string",
                        "classification": "pci.pan",
                        "encrypted": True,
                        "masked": True,
                    },
                    "label": {"type": "string", "classification": "none"},
                },
                "subject": {"key_field": "customer"},
                "retention": {"days": 365, "action": "delete"},
                "audit_reads": True,
            },
        },
        "workflows": {
            "retention": {
                "start": [{"type": "schedule", "every": 86400}, {"type": "manual"}],
                "first": "expire",
                "nodes": {"expire": {"type": "retention", "next": "done"}, "done": {"type": "end"}},
            }
        },
    }


def files_text(where: Path) -> str:
    """The bytes of a file, or of every file under a folder, as text."""
    paths = [where] if where.is_file() else [p for p in where.rglob("*") if p.is_file()]
    return "".join(p.read_bytes().decode("latin-1") for p in paths)


async def raw_text(platform: Platform, tenant: str) -> str:
    """Everything stored for the tenant's app data, as text (files on SQLite, rows on PG)."""
    t = await platform.tenants.get(tenant)
    db = platform.records.storage.database(t)
    if db.is_sqlite:
        return files_text(Path(str(db.engine.url.database)).parent)
    schema = platform.records.storage.schema(t)
    out = []
    async with db.read() as conn:
        for table in ("shop__customer", "shop__card"):
            rows = await conn.execute(sa.text(f'SELECT * FROM "{schema}"."{table}"'))
            out += [repr(tuple(r)) for r in rows]
    return "\n".join(out)


async def setup(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str]]:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "shop")
    r = await publish(client, "acme", "shop", shop())
    assert r.status_code in (200, 201), r.text
    owner = as_user(client, await token_for(client, "acme", "owner"))
    designer = as_user(client, await token_for(client, "acme", "designer"))
    return owner, designer


async def test_cards_are_encrypted_at_rest_and_masked_for_whoever_may_not_unmask(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    owner, designer = await setup(client)
    data = "/api/t/acme/apps/shop/data"
    ana = (
        await client.post(
            f"{data}/customer",
            headers=designer,
            json={
                "email": "ana@example.com",
                "full_name": "Ana Lima",
                "country": "DE",
                "notes": "prefers calls after 6pm",
            },
        )
    ).json()
    r = await client.post(
        f"{data}/card",
        headers=designer,
        json={"customer": ana["id"], "card_number": PAN, "label": "visa"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["card_number"] == "************1111"  # the writer may not unmask
    card = r.json()["id"]
    # the owner sees it in full, the designer masked, in a read and in a list
    assert (await client.get(f"{data}/card/{card}", headers=owner)).json()["card_number"] == PAN
    assert (await client.get(f"{data}/card/{card}", headers=designer)).json()[
        "card_number"
    ] == "************1111"
    listed = (await client.get(f"{data}/card", headers=designer)).json()["items"]
    assert [c["card_number"] for c in listed] == ["************1111"]
    expanded = (await client.get(f"{data}/card?expand=customer", headers=owner)).json()
    assert expanded["items"][0]["customer"]["notes"] == "prefers calls after 6pm"
    # echoing the masked value back changes nothing; a new number replaces it
    r = await client.patch(
        f"{data}/card/{card}",
        headers=designer,
        json={"card_number": "************1111", "label": "old visa"},
    )
    assert r.status_code == 200, r.text
    assert (await client.get(f"{data}/card/{card}", headers=owner)).json()["card_number"] == PAN
    r = await client.put(
        f"{data}/card/{card}",
        headers=designer,
        json={"customer": ana["id"], "card_number": "************1111", "label": "visa"},
    )
    assert r.status_code == 200, r.text
    assert (await client.get(f"{data}/card/{card}", headers=owner)).json()["card_number"] == PAN
    # a client's value that only looks sealed is sealed like any other, and reads back as sent
    forged = "enc1.x.AAAA"
    r = await client.patch(f"{data}/card/{card}", headers=owner, json={"card_number": forged})
    assert r.status_code == 200 and r.json()["card_number"] == forged, r.text
    assert (await client.get(f"{data}/card/{card}", headers=owner)).json()["card_number"] == forged
    await client.patch(f"{data}/card/{card}", headers=owner, json={"card_number": PAN})
    # an encrypted field cannot be filtered or sorted on (its ciphertext means nothing)
    r = await client.get(f"{data}/card?filter=card_number eq '{PAN}'", headers=owner)
    assert r.status_code == 400 and r.json()["path"] == "filter"
    # nothing readable at rest, in the platform's tables either
    stored = await raw_text(platform, "acme")
    assert "enc1." in stored and PAN not in stored and "after 6pm" not in stored
    if platform.db.is_sqlite:
        assert PAN not in files_text(Path(str(platform.db.engine.url.database)))
    # rotation re-wraps subject keys: everything still reads, and the ledger has it
    r = await client.post("/api/t/acme/compliance/keys/rotate", headers=designer)
    assert r.status_code == 403
    r = await client.post("/api/t/acme/compliance/keys/rotate", headers=owner)
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert r.json()["subject_keys"] >= 2
    platform.compliance.keys.forget((await platform.tenants.get("acme")).id)
    assert (await client.get(f"{data}/card/{card}", headers=owner)).json()["card_number"] == PAN
    # so does the master key's rotation (the vault's), which re-wraps tenant keys too
    await platform.vault.rotate_master(b"k" * 32, by="test")
    platform.compliance.keys.forget((await platform.tenants.get("acme")).id)
    assert (await client.get(f"{data}/card/{card}", headers=owner)).json()["card_number"] == PAN
    await platform.governance.audit.drain()
    tid = (await platform.tenants.get("acme")).id
    actions = {e["action"] for e in await platform.governance.audit.list(tid, limit=1000)}
    assert {"compliance.keys_rotated", "compliance.read"} <= actions


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_subject_export_and_erasure(client: httpx.AsyncClient, platform: Platform) -> None:
    owner, designer = await setup(client)
    data = "/api/t/acme/apps/shop/data"
    ids = {}
    for email, pan in (("ana@example.com", PAN), ("bob@example.com", PAN2)):
        c = (
            await client.post(
                f"{data}/customer",
                headers=owner,
                json={
                    "email": email,
                    "full_name": email.split("@")[0].title(),
                    "country": "DE",
                    "notes": f"notes of {email}",
                },
            )
        ).json()
        await client.post(
            f"{data}/card",
            headers=owner,
            json={"customer": c["id"], "card_number": pan, "label": "x"},
        )
        ids[email] = c["id"]
    body = {"subject": "ana@example.com"}
    assert (
        await client.post("/api/t/acme/compliance/subjects/export", headers=designer, json=body)
    ).status_code == 403
    r = await client.post("/api/t/acme/compliance/subjects/export", headers=owner, json=body)
    assert r.status_code == 200, r.text
    export = r.json()
    assert export["records"] == 2
    assert export["apps"]["shop"]["customer"][0]["notes"] == "notes of ana@example.com"
    assert export["apps"]["shop"]["card"][0]["card_number"] == PAN  # the subject's own data
    r = await client.post("/api/t/acme/compliance/subjects/erase", headers=owner, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["apps"]["shop"] == {
        "card": {"deleted": 1, "anonymised": 0},
        "customer": {"deleted": 0, "anonymised": 1},
    }
    assert r.json()["keys_destroyed"] >= 1
    # nothing of Ana through the API, nor in the stored bytes; Bob is untouched
    ana = (await client.get(f"{data}/customer/{ids['ana@example.com']}", headers=owner)).json()
    assert ana["email"] is None and ana["full_name"] is None and ana["notes"] is None
    cards = (await client.get(f"{data}/card", headers=owner)).json()["items"]
    assert [c["card_number"] for c in cards] == [PAN2]
    again = await client.post("/api/t/acme/compliance/subjects/export", headers=owner, json=body)
    assert again.json()["records"] == 0
    tenant = await platform.tenants.get("acme")
    db = platform.records.storage.database(tenant)
    async with db.read() as conn:
        raw = [tuple(r) for r in await conn.execute(sa.text("SELECT * FROM shop__customer"))]
    assert not any("ana" in str(v).lower() for row in raw for v in row)
    with sqlite3.connect(str(db.engine.url.database)) as sync:  # the WAL into the file
        assert sync.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    assert "ana@example.com" not in await raw_text(platform, "acme")  # secure_delete zeroes
    # crypto-shredding: a copy of Ana's ciphertext taken before (a backup) no longer opens
    bob_notes = [r for r in raw if r[-1] is not None][0][-1]
    assert bob_notes.startswith("enc1.")
    # the ledger names the subject only by its opaque ref, never by e-mail
    await platform.governance.audit.drain()
    events = await platform.governance.audit.list(tenant.id, action="compliance.subject_*")
    assert [e["action"] for e in events] == [
        "compliance.subject_exported",
        "compliance.subject_erased",
        "compliance.subject_exported",
    ]
    assert "ana@" not in repr(events)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_backup_copy_of_an_erased_subjects_ciphertext_cannot_be_read(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    owner, _ = await setup(client)
    data = "/api/t/acme/apps/shop/data"
    c = (
        await client.post(
            f"{data}/customer",
            headers=owner,
            json={
                "email": "ana@example.com",
                "full_name": "Ana",
                "country": "DE",
                "notes": "secret notes",
            },
        )
    ).json()
    tenant = await platform.tenants.get("acme")
    db = platform.records.storage.database(tenant)
    async with db.read() as conn:  # the "backup"
        sealed = (await conn.execute(sa.text("SELECT notes FROM shop__customer"))).scalar()
    await client.post(
        "/api/t/acme/compliance/subjects/erase", headers=owner, json={"subject": "ana@example.com"}
    )
    async with db.transaction() as conn:  # restore the backup's ciphertext
        await conn.execute(sa.text("UPDATE shop__customer SET notes = :v"), {"v": sealed})
    r = await client.get(f"{data}/customer/{c['id']}", headers=owner)
    assert r.status_code == 200 and r.json()["notes"] is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_retention_runs_as_a_workflow_and_is_audited(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    owner, _ = await setup(client)
    data = "/api/t/acme/apps/shop/data"
    old = (
        await client.post(
            f"{data}/customer",
            headers=owner,
            json={"email": "old@example.com", "full_name": "Old", "country": "DE"},
        )
    ).json()
    new = (
        await client.post(
            f"{data}/customer",
            headers=owner,
            json={"email": "new@example.com", "full_name": "New", "country": "DE"},
        )
    ).json()
    old_card = (
        await client.post(
            f"{data}/card",
            headers=owner,
            json={"customer": new["id"], "card_number": PAN, "label": "old"},
        )
    ).json()
    await client.post(
        f"{data}/card",
        headers=owner,
        json={"customer": new["id"], "card_number": PAN2, "label": "new"},
    )
    tenant = await platform.tenants.get("acme")
    db = platform.records.storage.database(tenant)
    now = dt.datetime.now(dt.UTC)
    async with db.transaction() as conn:  # back-date: 40 days and 400 days ago
        await conn.execute(
            sa.text("UPDATE shop__customer SET created_at = :t WHERE id = :i"),
            {"t": now - dt.timedelta(days=40), "i": old["id"]},
        )
        await conn.execute(
            sa.text("UPDATE shop__card SET created_at = :t WHERE id = :i"),
            {"t": now - dt.timedelta(days=400), "i": old_card["id"]},
        )
    # the schedule is registered with the engine; run the workflow it starts
    instance = await platform.workflows.start(
        tenant, "shop", "retention", {}, _owner(tenant.id), via="schedule"
    )
    await platform.workflows.engine.drain()
    done = await platform.workflows.instance(tenant, instance["id"], _owner(tenant.id))
    assert done["status"] == "completed", done
    customers = {
        c["id"]: c for c in (await client.get(f"{data}/customer", headers=owner)).json()["items"]
    }
    assert customers[old["id"]]["email"] is None and customers[old["id"]]["full_name"] is None
    assert customers[new["id"]]["email"] == "new@example.com"
    cards = (await client.get(f"{data}/card", headers=owner)).json()["items"]
    assert [c["label"] for c in cards] == ["new"]
    await platform.governance.audit.drain()
    runs = await platform.governance.audit.list(tenant.id, action="compliance.retention")
    assert len(runs) == 1 and runs[0]["data"]["deleted"] == 1 and runs[0]["data"]["anonymised"] == 1
    # a second run finds nothing more to do
    again = await platform.compliance.run_retention(tenant, "shop")
    assert (again["deleted"], again["anonymised"]) == (0, 0)


def _owner(tenant_id: str) -> Any:
    from plinth.governance.principal import Principal

    return Principal("user:dpo", "user", frozenset({"owner"}), tenant_id, name="dpo")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_encryption_is_refused_where_the_runtime_cannot_honour_it(
    client: httpx.AsyncClient,
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "bad")
    r = await client.put(
        "/api/t/acme/apps/bad/draft",
        json={
            "entities": {
                "thing": {
                    "fields": {
                        "amount": {"type": "decimal", "encrypted": True},
                        "code": {"type": "string", "encrypted": True, "unique": True},
                    }
                }
            }
        },
    )
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert paths == {
        "entities.thing.fields.amount.encrypted",
        "entities.thing.fields.code.encrypted",
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_demo_encrypts_masks_and_erases_a_policyholder_across_entities(
    platform: Platform,
) -> None:
    from plinth.demo import TENANT, load_demo
    from plinth.governance.principal import PLATFORM_ADMIN, Principal

    await load_demo(
        platform, Principal("admin", "user", frozenset({PLATFORM_ADMIN}), None), seed=False
    )
    tenant = await platform.tenants.get(TENANT)
    owner = _owner(tenant.id)
    nurse = Principal(
        "user:eva",
        "user",
        frozenset({"designer"}),
        tenant.id,
        name="eva",
        attrs={"groups": ["claims"]},
    )
    clerk = Principal("user:tom", "user", frozenset({"designer"}), tenant.id, name="tom")
    rec = platform.records

    async def make(entity: str, data: dict[str, Any]) -> dict[str, Any]:
        return await rec.create(tenant, "claims", entity, data, owner)  # type: ignore[return-value]

    holder = await make(
        "policyholder", {"full_name": "Ana Lima", "email": "ana@example.com", "country": "DE"}
    )
    policy = await make(
        "policy",
        {
            "number": "DE-000001",
            "holder": holder["id"],
            "product": "health",
            "starts_on": "2026-01-01",
        },
    )
    claim = await make(
        "claim",
        {
            "reference": "C-1",
            "policy": policy["id"],
            "country": "DE",
            "incident_date": "2026-02-01",
            "amount": "120.00",
            "description": "Broken arm at the ski slope",
            "health_notes": "fracture of the left radius",
        },
    )
    payout = await make("payout", {"claim": claim["id"], "amount": "120.00", "card_number": PAN})
    # the claims team sees the medical notes; nobody but owners sees the card number
    seen = await rec.get(tenant, "claims", "claim", claim["id"], nurse)
    assert seen["health_notes"] == "fracture of the left radius"
    assert "health_notes" not in await rec.get(tenant, "claims", "claim", claim["id"], clerk)
    assert (await rec.get(tenant, "claims", "payout", payout["id"], nurse))[
        "card_number"
    ] == "************1111"
    assert (await rec.get(tenant, "claims", "payout", payout["id"], owner))["card_number"] == PAN
    # the report is green and lists what the runtime enforces
    report = await platform.compliance.report(tenant)
    enforced = report["apps"][0]["enforcement"]
    assert report["status"] == "pass" and enforced["retention_workflows"] == ["retention"]
    assert {"payout.card_number", "claim.health_notes"} <= set(enforced["encrypted"])
    # the subject's records, followed from the policyholder through policy and claim
    export = await platform.compliance.export_subject(tenant, "ana@example.com")
    assert {e: len(r) for e, r in export["apps"]["claims"].items()} == {
        "policyholder": 1,
        "policy": 1,
        "claim": 1,
        "payout": 1,
    }
    erased = await platform.compliance.erase_subject(tenant, "ana@example.com", by="dpo")
    assert erased["apps"]["claims"]["payout"] == {"deleted": 1, "anonymised": 0}
    after = await rec.get(tenant, "claims", "claim", claim["id"], owner)
    assert after["health_notes"] is None and after["description"] is None
    # The anonymised claim stays workable: its required description stays empty, the rest
    # changes (a workflow on it goes on); a write that sets it must still be valid.
    changed = await rec.update(
        tenant, "claims", "claim", claim["id"], {"status": "rejected"}, owner
    )
    assert changed["status"] == "rejected" and changed["description"] is None
    with pytest.raises(ValidationFailed) as refused:
        await rec.update(tenant, "claims", "claim", claim["id"], {"description": ""}, owner)
    assert refused.value.faults[0].path == "description"
    text = await raw_text_of(platform, tenant)
    assert PAN not in text and "radius" not in text and "ana@example.com" not in text


async def raw_text_of(platform: Platform, tenant: Any) -> str:
    db = platform.records.storage.database(tenant)
    with sqlite3.connect(str(db.engine.url.database)) as sync:
        sync.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return files_text(Path(str(db.engine.url.database)).parent)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_values_stored_before_a_field_became_encrypted_are_sealed_at_publish(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await make_tenant(client, "acme")
    await make_app(client, "acme", "shop")
    before = shop()
    before["entities"]["card"]["fields"]["card_number"] = {
        "type": "string",
        "classification": "none",
    }
    assert (await publish(client, "acme", "shop", before)).status_code in (200, 201)
    owner = as_user(client, await token_for(client, "acme", "owner"))
    data = "/api/t/acme/apps/shop/data"
    c = (await client.post(f"{data}/customer", headers=owner, json={"email": "a@b.co"})).json()
    card = (
        await client.post(
            f"{data}/card", headers=owner, json={"customer": c["id"], "card_number": PAN}
        )
    ).json()
    assert PAN in await raw_text(platform, "acme")
    r = await publish(client, "acme", "shop", shop())  # now pci.pan, encrypted and masked
    assert r.status_code in (200, 201), r.text
    tenant = await platform.tenants.get("acme")
    db = platform.records.storage.database(tenant)
    async with db.read() as conn:
        stored = (await conn.execute(sa.text("SELECT card_number FROM shop__card"))).scalar()
    assert stored.startswith("enc1.")
    assert (await client.get(f"{data}/card/{card['id']}", headers=owner)).json()[
        "card_number"
    ] == PAN


async def test_encryption_off_opens_stored_values_and_on_again_seals_them(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """Removing `encrypted` stores the plaintext at publish (a string whose column changes
    type, a text whose column does not); adding it back seals them again; the values round-trip
    exactly. A value whose subject was erased stays unreadable."""
    owner, _ = await setup(client)
    data = "/api/t/acme/apps/shop/data"
    notes = "prefers calls after 6pm — ünïcode"
    ana = (
        await client.post(
            f"{data}/customer",
            headers=owner,
            json={"email": "ana@example.com", "full_name": "Ana", "country": "DE", "notes": notes},
        )
    ).json()
    card = (
        await client.post(
            f"{data}/card", headers=owner, json={"customer": ana["id"], "card_number": PAN}
        )
    ).json()
    gone = (
        await client.post(
            f"{data}/customer",
            headers=owner,
            json={"email": "bo@example.com", "full_name": "Bo", "country": "DE", "notes": "x"},
        )
    ).json()
    r = await client.post(
        "/api/t/acme/compliance/subjects/erase", json={"subject": "bo@example.com"}
    )
    assert r.status_code == 200, r.text
    tenant = await platform.tenants.get("acme")
    db = platform.records.storage.database(tenant)

    schema = platform.records.storage.schema(tenant)
    prefix = f'"{schema}".' if schema else ""

    async def stored() -> tuple[str, str]:
        async with db.read() as conn:
            pan = (
                await conn.execute(sa.text(f"SELECT card_number FROM {prefix}shop__card"))
            ).scalar()
            note = (
                await conn.execute(
                    sa.text(f"SELECT notes FROM {prefix}shop__customer WHERE id = :i"),
                    {"i": ana["id"]},
                )
            ).scalar()
        return str(pan), str(note)

    assert all(v.startswith("enc1.") for v in await stored())
    off = shop()
    off["entities"]["card"]["fields"]["card_number"] = {"type": "string", "classification": "none"}
    off["entities"]["customer"]["fields"]["notes"] = {"type": "text", "classification": "none"}
    r = await publish(client, "acme", "shop", off)
    assert r.status_code in (200, 201), r.text
    assert await stored() == (PAN, notes)  # in clear in the table, not ciphertext
    assert (await client.get(f"{data}/card/{card['id']}", headers=owner)).json()[
        "card_number"
    ] == PAN
    assert (await client.get(f"{data}/customer/{ana['id']}", headers=owner)).json()[
        "notes"
    ] == notes
    erased = (await client.get(f"{data}/customer/{gone['id']}", headers=owner)).json()
    assert erased.get("notes") is None  # shredded stays shredded
    r = await publish(client, "acme", "shop", shop())
    assert r.status_code in (200, 201), r.text
    assert all(v.startswith("enc1.") for v in await stored())
    assert (await client.get(f"{data}/card/{card['id']}", headers=owner)).json()[
        "card_number"
    ] == PAN
    assert (await client.get(f"{data}/customer/{ana['id']}", headers=owner)).json()[
        "notes"
    ] == notes
