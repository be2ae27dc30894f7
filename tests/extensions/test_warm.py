"""Warm instances of stateless plugins: reused per tenant and version, never after a failure."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from plinth.extensions.models import DEFAULT_LIMITS, PluginOutOfFuel
from plinth.extensions.sandbox import Sandbox
from tests.extensions.conftest import CACHE


class LogOnly:
    def call(self, capability: str, func: str, args: tuple[object, ...]) -> tuple[str, str]:
        return "ok", ""


def test_a_warm_instance_is_kept_per_key_and_dropped_when_its_call_fails(
    components: dict[str, Path],
) -> None:
    wasm = components["hostile"]
    sandbox = Sandbox(CACHE / "compiled")
    try:
        component, _ = sandbox.component(hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
        limits = DEFAULT_LIMITS["action"]
        echo = ("echo", json.dumps({"n": 1}))
        fresh = sandbox.call(component, "action", echo, limits, LogOnly())
        assert sandbox.warm_memories() == 0  # no key: nothing kept
        first = sandbox.call(component, "action", echo, limits, LogOnly(), reuse_key="acme/v1")
        kept = sandbox.warm_memories()
        assert kept > 0 and first.payload == fresh.payload
        again = sandbox.call(component, "action", echo, limits, LogOnly(), reuse_key="acme/v1")
        # the same instance answered: instantiation (its start-up code) was not paid again,
        # and the memory reported is that instance's, at least what a fresh one holds
        assert again.payload == fresh.payload and again.fuel < first.fuel
        assert sandbox.warm_memories() == kept
        assert again.peak_memory is not None and fresh.peak_memory is not None
        assert again.peak_memory >= fresh.peak_memory
        # another tenant never gets that instance
        sandbox.call(component, "action", echo, limits, LogOnly(), reuse_key="globex/v1")
        assert sandbox.warm_memories() == 2 * kept
        # a call that fails (here: out of fuel) leaves no instance behind to reuse
        starved = dataclasses.replace(limits, fuel=2_000_000)
        with pytest.raises(PluginOutOfFuel):
            sandbox.call(
                component, "action", ("loop", "{}"), starved, LogOnly(), reuse_key="acme/v1"
            )
        assert sandbox.warm_memories() == kept  # globex's only
        after = sandbox.call(component, "action", echo, limits, LogOnly(), reuse_key="acme/v1")
        assert after.payload == fresh.payload
    finally:
        sandbox.stop()
