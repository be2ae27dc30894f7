"""Fixtures for the extensions layer: plugins built once (cached on disk across runs)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from plinth.extensions import manifest as manifest_mod
from plinth.extensions.package import pack, read_modules
from plinth.governance.principal import PLATFORM_ADMIN, Principal
from plinth.server import Platform
from plinth.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.extensions.builds import PLUGINS, build_all

CACHE = Path(os.environ["PLINTH_CACHE_DIR"])  # set by tests/conftest.py
ADMIN = Principal("test-admin", "token", frozenset({PLATFORM_ADMIN}), name="admin")


@pytest.fixture(scope="session")
def components() -> dict[str, Path]:
    """Each test plugin's component, built at most once per source change (disk cache)."""
    return build_all()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Compiled artifacts are shared across tests and runs: compiling takes seconds.
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        embedded_worker=False,
        plugin_cache_dir=CACHE / "compiled",
    )


def manifest_text(name: str, **replace: str) -> str:
    text = (PLUGINS[name] / "plinth-plugin.toml").read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


_PACKAGES: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}


def package(components: dict[str, Path], name: str, **replace: str) -> bytes:
    """A package file of a test plugin (zipping 18 MB takes a while: once per session)."""
    key = (name, tuple(sorted(replace.items())))
    if key not in _PACKAGES:
        text = manifest_text(name, **replace)
        modules = read_modules(manifest_mod.parse(text), PLUGINS[name])
        _PACKAGES[key] = pack(text, components[name].read_bytes(), modules=modules)
    return _PACKAGES[key]


async def publish(
    platform: Platform, components: dict[str, Path], name: str, **replace: str
) -> Any:
    data = await asyncio.to_thread(package, components, name, **replace)
    version = await platform.plugins.publish(data, ADMIN)
    # Compile ahead, as an operator would: a cold compile takes seconds (more on a loaded
    # machine) and must not eat the request time limit of the first call a test makes.
    await platform.plugins.compile(version.name, version.version)
    return version


async def install(platform: Platform, tenant: str, name: str, **kw: Any) -> Any:
    from plinth.extensions.manifest import parse

    v = await platform.plugins.version(name)
    kw.setdefault("capabilities", list(parse(manifest_text(name)).capabilities))
    del v
    return await platform.plugins.install(tenant, name, ADMIN, **kw)
