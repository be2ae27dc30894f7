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

Nothing here reaches below wasmtime's public Python API (no ctypes), so no release can crash
a worker through it; one that lays memories out otherwise fails `probe` (run once per
sandbox, on its engine) and calls record no peak, with a log line.

A call's memories are told apart from the others in the process (warm instances', another
sandbox's) by base address: those not mapped when the map was last read, at the end of the
call before (less the memories of the stores closed since), or by `MemoryMeter.settle`.
"""

from __future__ import annotations

import contextlib
import os

import wasmtime

MAPS = "/proc/self/maps"
# A read-write run and the inaccessible mapping after it span at least this much when they are
# a linear memory (wasmtime reserves 4 GiB + guards for a 32-bit memory on 64-bit hosts); a
# glibc arena (64 MiB) or a thread stack never do.
RESERVATION = 1 << 30


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
    # The run of read-write mappings being followed: its first address and its end, as the
    # kernel writes them (one format for every line, so equal text is an equal address; only
    # a run that proves to be a memory is converted: this runs once per call).
    base = end = b""
    for line in (read_maps() if maps is None else maps).split(b"\n"):
        space = line.find(b" ")
        perms = line[space + 1 : space + 5]
        if perms == b"rw-p":
            start, _, stop = line[:space].partition(b"-")
            if start != end:  # not adjacent to the run: a new one
                base = start
            end = stop
        elif perms == b"---p":
            start, _, stop = line[:space].partition(b"-")
            if start == end and int(stop, 16) - int(base, 16) >= RESERVATION:
                found[int(base, 16)] = int(end, 16) - int(base, 16)
    return found


class MemoryMeter:
    """Which linear memories are a call's: those not mapped before it began.

    One read of the map per call, at its end; what is mapped before the next call is known
    from it, less the stores closed since, so a worker (the only maker of memories in its
    process, one call at a time) never reads the map before a call. Elsewhere, a store made
    or freed between calls by other code would blur that: `settle` reads the map afresh.
    """

    def __init__(self) -> None:
        self._mapped: set[int] | None = None  # base addresses mapped now, as far as known
        self.others = 0  # memories mapped at the last `settle` that no warm instance held

    def settle(self, kept: set[int]) -> None:
        """Read which memories are mapped now; `kept` are the warm instances' memories, any
        other still mapped is counted in `others` (a store that outlived its call)."""
        try:
            mapped = set(linear_memories())
        except OSError:  # never seen once the probe read it; the next call reads it again
            self._mapped = None
            return
        self._mapped = mapped
        self.others = len(mapped - kept)

    def begin(self) -> set[int] | None:
        """The memories mapped before a fresh instance's call; None if the map could not be
        read (the call runs all the same and records no peak)."""
        if self._mapped is None:
            try:
                self._mapped = set(linear_memories())
            except OSError:
                return None
        return set(self._mapped)

    def end(self) -> dict[int, int] | None:
        """Every linear memory mapped now and its size in bytes (a call's are among them
        while its store is open); None if the map could not be read (out of descriptors)."""
        try:
            sizes = linear_memories()
        except OSError:
            self._mapped = None
            return None
        self._mapped = set(sizes)
        return sizes

    def unmapped(self, bases: frozenset[int] | None) -> None:
        """A closed store's memories: no longer mapped (None: not known, so what is mapped is
        read afresh before the next call; a base left in it would hide a new memory there)."""
        if bases is None:
            self._mapped = None
        elif self._mapped is not None:
            self._mapped -= bases


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
