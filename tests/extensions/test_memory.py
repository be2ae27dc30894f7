"""A plugin call's peak memory, read from the memory map with copy-on-write images kept."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import pytest
import wasmtime

from plinth.extensions import memory
from plinth.extensions.models import DEFAULT_LIMITS, PluginInvalid, PluginOutOfMemory
from plinth.extensions.sandbox import Sandbox
from tests.extensions.conftest import CACHE

# Part of a plugin worker's /proc/self/maps: a thread stack (its guard page below it), a
# linear memory of 199 pages (a 32 MiB guard, then read-write: anonymous, the memory image's
# memfd, anonymous, then the rest of its 4 GiB reservation), a glibc arena (64 MiB: read-write,
# then inaccessible) and an empty linear memory (no page accessible).
MAPS = b"""\
55d1c2a4e000-55d1c2a4f000 r--p 00000000 08:01 1234   /usr/bin/python3.11
7f7249fff000-7f724a000000 ---p 00000000 00:00 0
7f724a000000-7f724a800000 rw-p 00000000 00:00 0
7f7250000000-7f7252000000 ---p 00000000 00:00 0
7f7252000000-7f72520f0000 rw-p 00000000 00:00 0
7f72520f0000-7f7252c60000 rw-p 00000000 00:01 1047   /memfd:wasm-memory-image (deleted)
7f7252c60000-7f7252c70000 rw-p 00000000 00:00 0
7f7252c70000-7f7354000000 ---p 00000000 00:00 0
7f7354000000-7f7354021000 rw-p 00000000 00:00 0
7f7354021000-7f7358000000 ---p 00000000 00:00 0
7f7360000000-7f7462000000 ---p 00000000 00:00 0
7f737bc98000-7f737bc9c000 rw-p 00000000 00:00 0
7ffd5e1c2000-7ffd5e1e3000 rw-p 00000000 00:00 0      [stack]
"""


class LogOnly:
    def __init__(self) -> None:
        self.resident: int | None = None

    def call(self, capability: str, func: str, args: tuple[object, ...]) -> tuple[str, str]:
        self.resident = _resident()  # in the middle of the call: the guest logs, then returns
        return "ok", ""


def _resident() -> int:
    status = Path("/proc/self/status").read_text()
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kb) << 10


def test_the_map_shows_a_linear_memory_as_its_read_write_run() -> None:
    assert memory.linear_memories(MAPS) == {0x7F7252000000: 199 << 16}


def test_a_wasmtime_that_lays_memory_out_otherwise_fails_the_probe() -> None:
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    # No reservation and no guards: each memory exactly as large as it is, moved to grow.
    config.memory_reservation = 0
    config.memory_guard_size = 0
    config.memory_reservation_for_growth = 0
    why = memory.probe(wasmtime.Engine(config))
    assert why is not None and "lays out linear memory" in why
    assert memory.probe(wasmtime.Engine(_sandbox_config())) is None


def _sandbox_config() -> wasmtime.Config:
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    return config


def test_a_fresh_instance_maps_its_memory_image_instead_of_copying_it(
    components: dict[str, Path],
) -> None:
    """Copy-on-write images stay on with the meter: a fresh instance's memory is the image's
    pages, shared, until the guest writes them, so the process holds far less than the
    guest's linear memory more while it runs (eager initialisation copied all of it)."""
    wasm = components["hostile"]
    sandbox = Sandbox(CACHE / "compiled")
    try:
        component, _ = sandbox.component(hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
        args = ("log-then-sleep", json.dumps({"seconds": 0}))
        limits = DEFAULT_LIMITS["action"]
        mapped = set(memory.linear_memories())  # other tests' sandboxes may hold some
        sandbox.call(component, "action", args, limits, LogOnly())  # loads what a call loads
        host = LogOnly()
        before = _resident()
        outcome = sandbox.call(component, "action", args, limits, host)
        assert outcome.peak_memory is not None and outcome.peak_memory > 8 << 20
        assert host.resident is not None
        assert host.resident - before < outcome.peak_memory * 2 // 3
        # Each call's store is closed as it returns: its memory unmapped, not left to the GC.
        assert set(memory.linear_memories()) <= mapped
    finally:
        sandbox.stop()


def test_without_a_memory_map_calls_run_and_record_no_peak(
    components: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A host with no /proc (or a wasmtime the probe does not know): a log line, no peak."""
    monkeypatch.setattr(memory, "MAPS", "/proc/self/no-such-map")
    wasm = components["hostile"]
    with caplog.at_level(logging.WARNING, logger="plinth.extensions"):
        sandbox = Sandbox(CACHE / "compiled")
    try:
        assert "peak-memory metering is off" in caplog.text and "cannot be read" in caplog.text
        component, _ = sandbox.component(hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
        echo = ("echo", json.dumps({"n": 1}))
        outcome = sandbox.call(component, "action", echo, DEFAULT_LIMITS["action"], LogOnly())
        assert (outcome.tag, outcome.payload, outcome.peak_memory) == ("ok", '{"n": 1}', None)
    finally:
        sandbox.stop()


def test_a_map_unreadable_for_a_while_costs_calls_their_peak_not_their_run(
    components: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The map read fails (out of descriptors, say) for some calls: they run and record no
    peak, a warm instance whose memories went unseen is not kept, and once it reads again
    every call is measured again."""
    wasm = components["hostile"]
    sandbox = Sandbox(CACHE / "compiled")
    try:
        component, _ = sandbox.component(hashlib.sha256(wasm.read_bytes()).hexdigest(), wasm)
        echo = ("echo", json.dumps({"n": 1}))
        limits = DEFAULT_LIMITS["action"]

        def call(reuse_key: str | None = None) -> int | None:
            outcome = sandbox.call(component, "action", echo, limits, LogOnly(), reuse_key)
            assert (outcome.tag, outcome.payload) == ("ok", '{"n": 1}')
            return outcome.peak_memory

        measured = call()
        assert measured is not None and measured > 0
        monkeypatch.setattr(memory, "MAPS", "/proc/self/no-such-map")
        assert [call(), call(), call("acme/v1")] == [None, None, None]
        assert sandbox.warm_memories() == 0
        monkeypatch.undo()
        assert [call(), call("acme/v1"), call("acme/v1")] == [measured] * 3
    finally:
        sandbox.stop()


def _core_component(body: str, declarations: str = "") -> str:
    """A component whose `action` runs `body` (an i32: nonzero answers ok "grown", zero ok
    "refused") in a core module with one memory and `declarations`."""
    return f"""
(component
  (core module $m
    (memory (export "memory") 1)
    {declarations}
    (global $heap (mut i32) (i32.const 1024))
    (data (i32.const 16) "refusedgrown")
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (global.get $heap)
      (global.set $heap (i32.add (global.get $heap) (local.get 3))))
    (func (export "action") (param i32 i32 i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (if {body}
        (then (i32.store (i32.const 4) (i32.const 23)) (i32.store (i32.const 8) (i32.const 5)))
        (else (i32.store (i32.const 4) (i32.const 16)) (i32.store (i32.const 8) (i32.const 7))))
      (i32.const 0)))
  (core instance $i (instantiate $m))
  (func (export "action") (param "name" string) (param "input" string)
    (result (result string (error string)))
    (canon lift (core func $i "action") (memory (core memory $i "memory"))
      (realloc (core func $i "realloc"))))
)"""


def _compiled(sandbox: Sandbox, wat: str, folder: Path) -> object:
    data = wasmtime.wat2wasm(wat)
    path = folder / "plugin.wasm"
    path.write_bytes(data)
    component, _ = sandbox.component(hashlib.sha256(data).hexdigest(), path)
    return component


def test_a_guest_holds_no_more_than_its_memory_limit_in_more_memories_or_tables(
    tmp_path: Path,
) -> None:
    """wasmtime's memory limit is per linear memory, and tables are host memory it does not
    count: a guest with twelve memories held twelve times its limit, one growing a table by
    16 million elements took 128 MiB more, each under a limit of 16 MiB."""
    sandbox = Sandbox(tmp_path / "compiled")
    limits = dataclasses.replace(DEFAULT_LIMITS["action"], memory_bytes=16 << 20)
    args = ("a", "{}")
    try:
        # One memory grown to its limit is what it may hold.
        one = _compiled(
            sandbox,
            _core_component("(i32.ne (memory.grow (i32.const 255)) (i32.const -1))"),
            tmp_path,
        )
        outcome = sandbox.call(one, "action", args, limits, LogOnly())
        assert outcome.payload == "grown" and outcome.peak_memory == 16 << 20
        # Twelve more of them, each grown to the limit: not instantiated at all.
        memories = "".join(f"(memory $m{i} 1)" for i in range(12))
        grows = "".join(f"(drop (memory.grow $m{i} (i32.const 255)))" for i in range(12))
        many = _compiled(
            sandbox,
            _core_component(f"(block (result i32) {grows} (i32.const 1))", memories),
            tmp_path,
        )
        with pytest.raises(PluginOutOfMemory):
            sandbox.call(many, "action", args, limits, LogOnly())
        # ... and refused when published (compiled and linked ahead of any call).
        with pytest.raises(PluginInvalid, match="memor"):
            sandbox.check(many, ["action"])  # type: ignore[arg-type]
        # A table grown by 16 million elements (8 bytes each): the guest is told no.
        table = _compiled(
            sandbox,
            _core_component(
                "(i32.ne (table.grow $t (ref.null func) (i32.const 16777216)) (i32.const -1))",
                "(table $t 1 funcref)",
            ),
            tmp_path,
        )
        assert sandbox.call(table, "action", args, limits, LogOnly()).payload == "refused"
        # The GC proposal's heap would be one more memory under the limit: not accepted.
        gc = "(type $a (array (mut i8))) (global $g (mut (ref null $a)) (ref.null $a))"
        with pytest.raises(PluginInvalid):
            _compiled(sandbox, _core_component("(i32.const 1)", gc), tmp_path)
    finally:
        sandbox.stop()
