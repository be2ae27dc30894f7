"""Fixtures for compliance tests.

`policy_kind` stands in for governance's Cedar `policy` kind (built on another branch) with the
one property the packs rely on: a `policies` section of documents holding Cedar text.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plinth.metadata import kinds


@pytest.fixture
def policy_kind() -> Iterator[None]:
    if kinds.by_section("policies") is not None:  # the real kind is installed: use it
        yield
        return
    kinds.register(
        kinds.Kind(
            name="policy",
            section="policies",
            id_prefix="pol",
            schema={
                "type": "object",
                "required": ["cedar"],
                "properties": {"id": {"type": "string"}, "cedar": {"type": "string"}},
            },
        )
    )
    try:
        yield
    finally:
        kinds._kinds.pop("policy", None)
