"""Fuzzing joins the suite: schemathesis against a real server, on the platform's OpenAPI
document and on the demo app's generated one. Zero server errors, zero undocumented statuses,
zero undocumented content types.

A small, deterministic budget in CI (`PLINTH_FUZZ_EXAMPLES` per operation and mode, default
4); raise it locally for a longer hunt: `PLINTH_FUZZ_EXAMPLES=200 pytest tests/server/test_fuzz.py`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from plinth.demo import TENANT, load_demo
from plinth.server import Platform, create_app
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.extensions.conftest import ADMIN
from tests.helpers import free_port

EXAMPLES = int(os.environ.get("PLINTH_FUZZ_EXAMPLES", "4"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FUZZ_TENANT = "fuzz"  # the platform document's tenant paths point here, not at the demo


@dataclass
class Served:
    base: str
    platform: Platform
    loop: asyncio.AbstractEventLoop

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(300)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real server (uvicorn in a thread, its own event loop) with the demo loaded."""
    folder = tmp_path_factory.mktemp("fuzz")
    settings_ = Settings(
        data_dir=folder / "data",
        database_url=f"sqlite+aiosqlite:///{folder / 'plinth.db'}",
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        plugin_cache_dir=Path(os.environ["PLINTH_CACHE_DIR"]) / "compiled",
        log_level="warning",
    )
    platform = Platform(settings_)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(platform=platform), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    loops: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        loop = asyncio.new_event_loop()
        loops.append(loop)
        loop.run_until_complete(server.serve())

    thread = threading.Thread(target=serve, name="fuzz-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    found = Served(f"http://127.0.0.1:{port}", platform, loops[0])
    found.run(load_demo(platform, ADMIN, http=create_app(platform=platform)))
    httpx.post(f"{found.base}/api/tenants", json={"slug": FUZZ_TENANT}, headers=AUTH)
    try:
        yield found
    finally:
        server.should_exit = True
        thread.join(60)


def _configured(schema: Any) -> Any:
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES,
        deterministic=True,
        allow_x00=True,
    )
    return schema


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


def fuzz(schema: Any, served: Served, pin: Callable[[Any], None] | None = None) -> int:
    """Every operation of `schema`, with valid and invalid input; failures collected. Returns
    the number of requests made."""
    failures: list[str] = []
    made = 0
    for found in schema.get_all_operations():
        operation = found.ok()
        # Invalid input needs something to be invalid: a body, or a constrained parameter
        # (every string is a valid path segment).
        negatable = operation.body or any(p.location != "path" for p in operation.iter_parameters())
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if negatable else [])
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @FUZZ
            def run(case: Any) -> None:
                nonlocal made
                if pin is not None:
                    pin(case)
                made += 1
                case.call_and_validate(base_url=served.base, headers=AUTH, checks=CHECKS)

            started = time.monotonic()
            try:
                run()
            except Unsatisfiable:
                pass  # nothing of this operation can be made invalid
            except Exception as exc:  # the check's report names the request and response
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
            if os.environ.get("PLINTH_FUZZ_TIMES"):
                print(f"{time.monotonic() - started:6.2f}s {operation.label} {mode.value}")  # noqa: T201
    assert not failures, "\n\n".join(failures)
    print(f"{schema.raw_schema['info']['title']}: {made} requests")  # noqa: T201 (the CI log)
    return made


def test_the_demo_apps_openapi_holds(served: Served) -> None:
    url = f"{served.base}/api/t/{TENANT}/apps/claims/openapi.json"
    schema = schemathesis.openapi.from_url(url, headers=AUTH)
    assert fuzz(schema, served) > 0


def test_the_platforms_openapi_holds(served: Served) -> None:
    def pin(case: Any) -> None:
        # Tenant paths point at a tenant of their own (a random slug is a 403/404 only).
        if "tenant" in (case.path_parameters or {}):
            case.path_parameters["tenant"] = FUZZ_TENANT

    schema = schemathesis.openapi.from_url(f"{served.base}/openapi.json")
    assert fuzz(schema, served, pin) > 0
