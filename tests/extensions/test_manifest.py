"""The manifest: every fault reported with its path; a good one parses."""

from __future__ import annotations

import pytest

from plinth.errors import ValidationFailed
from plinth.extensions.manifest import parse
from tests.extensions.conftest import manifest_text


def test_example_manifest_parses() -> None:
    m = parse(manifest_text("fraud-scorer"))
    assert m.name == "fraud-scorer" and m.action("score") is not None
    assert m.hooks_for("claims", "claim") and not m.hooks_for("claims", "policyholder")


def test_bad_manifest_lists_every_fault_with_its_path() -> None:
    text = """name = "Bad Name"
version = "one"
capabilities = ["log", "files"]
[http]
hosts = ["not a host!"]
[actions.go]
input = { type = 12 }
"""
    with pytest.raises(ValidationFailed) as caught:
        parse(text)
    paths = {f.path for f in caught.value.faults}
    assert {
        "name",
        "version",
        "publisher",
        "capabilities.1",
        "http.hosts.0",
        "http.hosts",
        "actions.go.input",
    } <= paths


def test_not_toml_is_a_syntax_fault() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse("name = ")
    assert caught.value.faults[0].code == "syntax"
