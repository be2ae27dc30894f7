"""More tenants than a node keeps open, on a server whose open-files limit could not hold them
all: every request succeeds, and the metrics say files were closed to stay within the bound."""

from __future__ import annotations

import asyncio
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import httpx

from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.server.platform import Platform
from plinth.settings import Settings
from tests.helpers import free_port

ADMIN = "plt_scale_admin_token_0123456789abcdef"
ROOT = Path(__file__).parents[2]
TENANTS = 16
BOUND = 3
# About 35 descriptors are taken before any tenant is touched (the platform database, the
# plugin workers' pipes, sockets); 16 tenant files held open would need 48 more.
OPEN_FILES = 56
NOTES = {
    "entities": {
        "note": {"fields": {"text": {"type": "string", "required": True, "maxLength": 200}}}
    }
}
OPERATOR = Principal("test:operator", "cli", frozenset({PLATFORM_ADMIN}), name="test:operator")


async def _create(data_dir: Path) -> dict[str, str]:
    """TENANTS tenants, each with the app `notes` published and one record: slug -> id."""
    platform = Platform(Settings(data_dir=data_dir, embedded_worker=False))
    await platform.start()

    async def one(i: int) -> tuple[str, str]:
        tenant = await platform.tenants.create(f"scale-{i:02d}")
        await platform.metadata.create_app(tenant, "notes")
        await platform.metadata.put_draft(tenant, "notes", NOTES)
        await platform.metadata.publish(tenant, "notes", OPERATOR)
        record = await platform.records.create(
            tenant, "notes", "note", {"text": f"note of {tenant.slug}"}, OPERATOR
        )
        assert isinstance(record, dict)
        return tenant.slug, record["id"]

    try:
        return dict(await asyncio.gather(*(one(i) for i in range(TENANTS))))
    finally:
        await platform.stop()


def _low_open_files_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, hard))


def _metrics(client: httpx.Client) -> dict[str, float]:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    return {
        name: float(value)
        for line in r.text.splitlines()
        if line and not line.startswith("#")
        for name, value in [line.split()]
    }


def test_more_tenants_than_open_files_allow(tmp_path: Path) -> None:
    records = asyncio.run(_create(tmp_path))
    port = free_port()
    env = {
        **os.environ,
        "PLINTH_DATA_DIR": str(tmp_path),
        "PLINTH_ADMIN_TOKEN": ADMIN,
        "PLINTH_TENANT_FILES_OPEN": str(BOUND),
        "PLINTH_PLUGIN_WORKERS": "2",
        "PYTHONPATH": str(ROOT / "src"),
    }
    env.pop("PLINTH_DATABASE_URL", None)
    argv = [sys.executable, "-m", "uvicorn", "--factory", "plinth.server.app:create_app"]
    proc = subprocess.Popen(
        [*argv, "--port", str(port), "--log-level", "warning"],
        env=env,
        preexec_fn=_low_open_files_limit,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {ADMIN}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            order = list(records.items()) * 3
            random.Random(20).shuffle(order)
            for slug, record_id in order:
                r = client.get(f"/api/t/{slug}/apps/notes/data/note/{record_id}")
                assert r.status_code == 200, r.text
                assert r.json()["text"] == f"note of {slug}"
            metrics = _metrics(client)
        assert metrics["plinth_tenant_files_open"] <= BOUND
        assert metrics["plinth_tenant_files_evicted_total"] >= TENANTS - BOUND
        assert metrics["plinth_tenant_files_opened_total"] >= TENANTS
        assert metrics["plinth_process_open_files"] < OPEN_FILES
    finally:
        proc.terminate()
        proc.wait(timeout=15)
