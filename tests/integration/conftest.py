"""Fixtures of the integration tests: a real remote HTTP service on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.remote import Remote, start


@pytest.fixture
def remote() -> Iterator[Remote]:
    found = start()
    try:
        yield found
    finally:
        assert found.server is not None
        found.server.shutdown()
        found.server.server_close()
