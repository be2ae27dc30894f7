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


def test_a_warm_instance_grown_past_a_calls_limit_does_not_answer_it(
    components: dict[str, Path],
) -> None:
    """A tenant's warm instance grew under an action's limit (128 MB); its before-write hook
    (96 MB), or a call after the admin lowered the limit, gets a fresh instance, not one
    holding more than that call may."""
    wasm = components["hostile"]
    sandbox = Sandbox(CACHE / "compiled")
    try:
        component, _ = sandbox.component(hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
        action, hook = DEFAULT_LIMITS["action"], DEFAULT_LIMITS["before-write"]
        hold = ("hold", json.dumps({"mb": 110}))
        grown = sandbox.call(component, "action", hold, action, LogOnly(), reuse_key="acme/v1")
        assert grown.peak_memory is not None and grown.peak_memory > hook.memory_bytes
        echo = ("echo", json.dumps({"n": 1}))
        small = sandbox.call(component, "action", echo, hook, LogOnly(), reuse_key="acme/v1")
        assert small.payload == '{"n": 1}'
        assert small.peak_memory is not None and small.peak_memory <= hook.memory_bytes
        # The fresh one is kept in its place, and answers the next call under the larger limit.
        again = sandbox.call(component, "action", echo, action, LogOnly(), reuse_key="acme/v1")
        assert again.peak_memory == small.peak_memory
    finally:
        sandbox.stop()
