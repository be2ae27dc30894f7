"""`GET /metrics`: what this process holds, in the Prometheus text format (platform admins).

Per-tenant resources are bounded by configuration, not by the number of tenants; these are the
numbers that show it: tenant database files open (and opened and closed to stay within their
bound since start), compiled apps and policy sets cached, and the process's own open files and
threads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from plinth.errors import Forbidden
from plinth.governance.http import PrincipalDep
from plinth.http import composed
from plinth.server.platform import Platform

PlatformDep = Annotated[Platform, Depends(composed)]

router = APIRouter(tags=["health"])


def _open_files() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None  # not Linux


def _threads() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count()


def samples(platform: Platform) -> list[tuple[str, str, str, float]]:
    """(name, type, help, value) of every metric."""
    files = platform.records.storage.files.stats()
    policies = platform.governance.authorizer.stats()
    out: list[tuple[str, str, str, float]] = [
        ("plinth_tenant_files_open", "gauge", "Tenant database files open now", files["open"]),
        (
            "plinth_tenant_files_bound",
            "gauge",
            "Tenant database files kept open at most (idle ones beyond are closed)",
            files["bound"],
        ),
        (
            "plinth_tenant_files_opened_total",
            "counter",
            "Tenant database files opened since start",
            files["opened"],
        ),
        (
            "plinth_tenant_files_evicted_total",
            "counter",
            "Tenant database files closed to stay within the bound (least recently used)",
            files["evicted"],
        ),
        (
            "plinth_compiled_apps_cached",
            "gauge",
            "Compiled published apps cached",
            len(platform.records.registry),
        ),
        (
            "plinth_policy_sets_cached",
            "gauge",
            "Apps whose policy set is cached",
            policies["apps"],
        ),
        ("plinth_process_threads", "gauge", "Threads of this process", _threads()),
    ]
    fds = _open_files()
    if fds is not None:
        out.append(("plinth_process_open_files", "gauge", "Open file descriptors", fds))
    return out


def render(platform: Platform) -> str:
    lines = []
    for name, kind, text, value in samples(platform):
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]
    return "\n".join(lines) + "\n"


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(platform: PlatformDep, principal: PrincipalDep) -> PlainTextResponse:
    """This process's resource metrics (Prometheus text format); platform admins only."""
    if not principal.is_platform_admin:
        raise Forbidden("Only platform admins read metrics", extra={"action": "metrics.read"})
    return PlainTextResponse(render(platform), media_type="text/plain; version=0.0.4")
