"""Peak linear memory per plugin call, read from the process's memory map (Linux).

wasmtime's own allocator (the default, copy-on-write memory images on) reserves each linear
memory as one range of address space: a guard, the memory, then more guard and room to grow,
4 GiB and more on a 64-bit host. It makes the memory readable and writable up to its current
size and leaves the rest inaccessible; the guest's `memory.grow` opens more of it. So in
/proc/self/maps a linear memory is a run of read-write private mappings (anonymous, and the
memory image's memfd mapped over them) followed by an inaccessible one, the two together at
least `RESERVATION` long, and the run's length is the memory's size in bytes (whole 64 KiB
wasm pages). Linear memory never shrinks, so its size when a call returns is the call's peak:
what the guest asked for, which is what the store's memory limit caps, not what is resident.

Nothing here calls into wasmtime, so no release can crash a worker through it; a release that
lays memories out otherwise fails `probe` (run once per sandbox) and calls record no peak,
with a log line. A call's memories are told apart from the others in the process (warm
instances', another call's) by base address: those that appeared since the map was last read
before the call.
"""

from __future__ import annotations

import contextlib
import os
import re

import wasmtime

MAPS = "/proc/self/maps"
# A read-write run and the inaccessible mapping after it span at least this much when they are
# a linear memory (wasmtime reserves 4 GiB + guards for a 32-bit memory on 64-bit hosts); a
# glibc arena (64 MiB) or a thread stack never do.
RESERVATION = 1 << 30
_MAPPING = re.compile(rb"^([0-9a-f]+)-([0-9a-f]+) (rw-p|---p) ", re.MULTILINE)


def read_maps() -> bytes:
    """This process's memory map as the kernel writes it."""
    fd = os.open(MAPS, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def linear_memories(maps: bytes | None = None) -> dict[int, int]:
    """The linear memories mapped in this process: base address → size in bytes."""
    found: dict[int, int] = {}
    base = end = -1  # the run of read-write mappings being followed, if any
    for match in _MAPPING.finditer(read_maps() if maps is None else maps):
        start, stop = int(match[1], 16), int(match[2], 16)
        if match[3] == b"rw-p":
            if start != end:  # not adjacent: a new run
                base = start
            end = stop
        elif start == end and stop - base >= RESERVATION:
            found[base] = end - base
    return found


class MemoryMeter:
    """Which linear memories are a call's: those that were not mapped before it began.

    Right for one call at a time per process, as a worker runs them: a store created on
    another thread meanwhile would count as the call's.
    """

    def __init__(self) -> None:
        self._before: set[int] | None = None
        self.others = 0  # memories mapped at the last `settle` that belonged to no warm instance

    def settle(self, kept: set[int]) -> None:
        """Note the memories mapped now, between calls (off the next call's path); `kept` are
        the warm instances' memories, anything else still mapped is counted in `others`."""
        try:
            mapped = set(linear_memories())
        except OSError:  # never seen once the probe read it; the next call reads it again
            self._before = None
            return
        self._before = mapped
        self.others = len(mapped - kept)

    def begin(self) -> set[int]:
        """The memories mapped before a fresh instance's call (from `settle`, else read now)."""
        before = self._before if self._before is not None else set(linear_memories())
        self._before = None  # this call's instance changes what is mapped
        return before

    def sizes(self) -> dict[int, int]:
        """Every linear memory mapped now and its size in bytes."""
        self._before = None
        return linear_memories()


# A core module with a data segment (so it has a copy-on-write image) that grows its memory by
# two pages: what the probe checks the map against.
_PROBE_WAT = """
(module
  (memory (export "memory") 1 64)
  (data (i32.const 4096) "plinth")
  (func (export "run") (result i32)
    (drop (memory.grow (i32.const 2)))
    (i32.store (i32.const 70000) (i32.const 7))
    (memory.size)))
"""


def probe(engine: wasmtime.Engine) -> str | None:
    """Why the map cannot tell this engine's linear memories' sizes, or None when it can.

    A guest on `engine` (the sandbox's own configuration) starts with one page, grows to
    three, and its store is closed: the map must show one new memory of 64 KiB, then 192 KiB,
    then none.
    """
    try:
        before = set(linear_memories())
    except OSError as exc:
        return f"{MAPS} cannot be read ({exc.strerror})"
    store = wasmtime.Store(engine)
    try:
        with contextlib.suppress(wasmtime.WasmtimeError):  # an engine without fuel
            store.set_fuel(1_000_000)
        store.set_epoch_deadline(1 << 30)  # without epochs, nothing to do
        instance = wasmtime.Instance(store, wasmtime.Module(engine, _PROBE_WAT), [])
        started = {b: n for b, n in linear_memories().items() if b not in before}
        run = instance.exports(store)["run"]
        pages = run(store)  # type: ignore[operator]
        grown = {b: n for b, n in linear_memories().items() if b not in before}
    finally:
        store.close()
    gone = {b for b in linear_memories() if b not in before}
    if list(started.values()) != [1 << 16] or list(grown.values()) != [pages * (1 << 16)]:
        return (
            f"wasmtime {wasmtime_version()} lays out linear memory in a way the map does not "
            f"show (saw {sorted(started.values())} then {sorted(grown.values())} bytes for "
            f"1 then {pages} pages)"
        )
    if gone & started.keys():
        return f"wasmtime {wasmtime_version()} kept a closed store's memory mapped"
    return None


def wasmtime_version() -> str:
    from importlib.metadata import version

    return version("wasmtime")
