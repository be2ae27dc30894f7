"""Peak linear memory per plugin call, measured exactly by a host memory creator.

wasmtime-py has no resource-limiter callback and a component never exports its core memory,
so the sandbox allocates the guest's linear memories itself (wasmtime's `MemoryCreator`, through
the C API): each memory is an anonymous mapping of the reservation wasmtime asks for, made
accessible up to the memory's size and grown with `mprotect` when the guest grows it. Linear
memory never shrinks, so when a call returns, the sizes of the memories its store created are
its peak. The store's limits are still enforced by wasmtime before any growth reaches us.

The price: wasmtime's copy-on-write memory images only work with its own allocator, so the
engine initialises memories eagerly (a few ms per instantiation for a componentize-py guest).
`Settings.plugin_measure_memory = False` keeps copy-on-write and records no peak.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import mmap
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi
from wasmtime._bindings import (
    wasmtime_memory_creator_t,
    wasmtime_memory_get_callback_t,
    wasmtime_memory_grow_callback_t,
    wasmtime_new_memory_callback_t,
)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)
_RW = mmap.PROT_READ | mmap.PROT_WRITE
_PROT_NONE = 0
# Without a static reservation from wasmtime, reserve this much so a memory never moves.
_DEFAULT_RESERVATION = 4 << 30


@dataclass
class _Memory:
    base: int
    size: int  # accessible bytes (the linear memory's current size)
    capacity: int  # bytes it may grow to without moving
    mapped: int  # capacity + guard region


class MemoryMeter:
    """A wasmtime memory creator that knows every memory's size, attributed per thread."""

    def __init__(self) -> None:
        shape = callback_shape()
        if shape is None:
            raise MeterUnsupported(
                f"wasmtime {wasmtime_version()} has a memory-creator callback this meter does "
                "not know"
            )
        self._memories: dict[int, _Memory] = {}
        self._ids = itertools.count(1)
        self._local = threading.local()
        # ctypes callbacks must outlive every engine that uses them: kept on the instance.
        new = self._new_memory_request if shape == "request" else self._new_memory_args
        self._new = wasmtime_new_memory_callback_t(new)
        self._get = wasmtime_memory_get_callback_t(self._get_memory)
        self._grow = wasmtime_memory_grow_callback_t(self._grow_memory)
        self._finalize = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(self._finalize_memory)
        self._noop = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _env: None)
        self._creator = wasmtime_memory_creator_t(None, self._new, self._noop)

    def install(self, config: wasmtime.Config) -> None:
        """Make engines built from `config` allocate their memories here."""
        ffi.wasmtime_config_host_memory_creator_set(config.ptr(), ctypes.byref(self._creator))
        ffi.wasmtime_config_memory_init_cow_set(config.ptr(), False)

    def begin(self) -> None:
        """Attribute memories created on this thread from now on to the current call."""
        self._local.created = []

    def created(self) -> list[_Memory]:
        """The memories created on this thread since `begin` (sizes stay current)."""
        return list(getattr(self._local, "created", None) or [])

    def peak(self) -> int:
        """Bytes of linear memory the current call's store holds (its peak: memory only grows)."""
        created: list[_Memory] = getattr(self._local, "created", None) or []
        return sum(m.size for m in created)

    def end(self) -> None:
        self._local.created = None

    @property
    def live(self) -> int:
        """Linear memories currently allocated (by stores not yet dropped)."""
        return len(self._memories)

    # -- the C callbacks: they must never raise (ctypes would return garbage to wasmtime) --
    def _new_memory_args(
        self,
        _env: int,
        _ty: object,
        minimum: int,
        maximum: int,
        reserved: int,
        guard: int,
        ret: object,
    ) -> int:
        """wasmtime 50: the request comes as separate arguments."""
        return self._new_memory(minimum, maximum, reserved, guard, ret)

    def _new_memory_request(self, _env: int, request: object, ret: object) -> int:
        """wasmtime 51: the request comes as one `wasmtime_memory_request_t`."""
        try:
            r = request.contents  # type: ignore[attr-defined]
            minimum, maximum = r.minimum, r.maximum
            reserved, guard = r.reserved_size_in_bytes, r.guard_size_in_bytes
        except Exception as exc:  # pragma: no cover - defensive: never unwind into wasmtime
            return _error(f"memory creator failed: {exc}")
        return self._new_memory(minimum, maximum, reserved, guard, ret)

    def _new_memory(
        self, minimum: int, maximum: int, reserved: int, guard: int, ret: object
    ) -> int:
        try:
            capacity = reserved or max(maximum, minimum, _DEFAULT_RESERVATION)
            mapped = capacity + guard
            base = _libc.mmap(
                None,
                mapped,
                _PROT_NONE,
                mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE,
                -1,
                0,
            )
            if base is None or base == _MAP_FAILED:
                return _error("could not reserve memory for the plugin")
            if minimum and _libc.mprotect(base, minimum, _RW) != 0:
                _libc.munmap(base, mapped)
                return _error("could not commit memory for the plugin")
            key = next(self._ids)
            memory = _Memory(base, minimum, capacity, mapped)
            self._memories[key] = memory
            created = getattr(self._local, "created", None)
            if created is not None:
                created.append(memory)
            out = ret.contents  # type: ignore[attr-defined]
            out.env = key
            out.get_memory = self._get
            out.grow_memory = self._grow
            out.finalizer = self._finalize
            return 0
        except Exception as exc:  # pragma: no cover - defensive: never unwind into wasmtime
            return _error(f"memory creator failed: {exc}")

    def _get_memory(self, env: int, size: object, capacity: object) -> int:
        memory = self._memories[env]
        size[0] = memory.size  # type: ignore[index]
        capacity[0] = memory.capacity  # type: ignore[index]
        return memory.base

    def _grow_memory(self, env: int, new_size: int) -> int:
        try:
            memory = self._memories[env]
            if new_size > memory.capacity:
                return _error("the plugin's memory cannot grow beyond its reservation")
            if new_size > memory.size and _libc.mprotect(memory.base, new_size, _RW) != 0:
                return _error("could not commit memory for the plugin")
            memory.size = max(memory.size, new_size)
            return 0
        except Exception as exc:  # pragma: no cover - defensive
            return _error(f"memory grow failed: {exc}")

    def _finalize_memory(self, env: int) -> None:
        memory = self._memories.pop(env, None)
        if memory is not None:
            _libc.munmap(memory.base, memory.mapped)


class MeterUnsupported(RuntimeError):
    """The installed wasmtime's memory-creator binding is not one this meter knows."""


def wasmtime_version() -> str:
    from importlib.metadata import version

    return version("wasmtime")


def callback_shape() -> str | None:
    """Which memory-creator callback the installed wasmtime binding declares, if a known one.

    wasmtime 50 passes (env, type, minimum, maximum, reserved, guard, out); wasmtime 51 passes
    (env, request, out) with the numbers in a `wasmtime_memory_request_t`. The C ABI is read
    from the binding's own declaration, so a third shape is refused instead of guessed.
    """
    argtypes = getattr(wasmtime_new_memory_callback_t, "_argtypes_", None) or ()
    if len(argtypes) == 7:
        return "args"
    if len(argtypes) == 3 and hasattr(_bindings, "wasmtime_memory_request"):
        fields = {name for name, *_ in _bindings.wasmtime_memory_request._fields_}
        if {"minimum", "maximum", "reserved_size_in_bytes", "guard_size_in_bytes"} <= fields:
            return "request"
    return None


# A core module that grows its memory by two pages and reports the size: the probe's guest.
_PROBE_WAT = """
(module
  (memory (export "memory") 1 64)
  (func (export "run") (result i32)
    (drop (memory.grow (i32.const 2)))
    (i32.store (i32.const 70000) (i32.const 7))
    (memory.size)))
"""


def selftest() -> None:
    """Run a guest under the meter in this process; exits non-zero (or dies) if it is broken."""
    meter = MemoryMeter()
    config = wasmtime.Config()
    meter.install(config)
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    module = wasmtime.Module(engine, _PROBE_WAT)
    meter.begin()
    instance = wasmtime.Instance(store, module, [])
    run = instance.exports(store)["run"]
    pages = run(store)  # type: ignore[operator]
    peak = meter.peak()
    meter.end()
    if pages != 3 or peak != 3 * 65536:
        raise SystemExit(f"meter measured {peak} bytes for 3 pages")


def probe(cache_dir: Path) -> str | None:
    """Why the meter cannot be used with the installed wasmtime, or None when it works.

    A wrong ctypes callback does not raise: it corrupts the heap and aborts the process. So the
    meter is tried once in a child process per (wasmtime version, this module) and the verdict
    cached beside the compiled artifacts.
    """
    if callback_shape() is None:
        return (
            f"wasmtime {wasmtime_version()} declares a memory-creator callback of an unknown shape"
        )
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    marker = cache_dir / f"meter-{wasmtime_version()}-{digest}.ok"
    if marker.exists():
        return None
    done = subprocess.run(
        [sys.executable, "-c", "from plinth.extensions.memory import selftest; selftest()"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return f"wasmtime {wasmtime_version()}: the meter's self-test failed ({tail[0]})"
    cache_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("ok\n")
    return None


def _error(message: str) -> int:
    err = ffi.wasmtime_error_new(message.encode())
    return ctypes.cast(err, ctypes.c_void_p).value or 0
