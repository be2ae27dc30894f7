"""The sandbox: wasmtime running plugin components with fuel, memory and wall-clock limits.

The only doors out are the host functions linked here; each call reaches them through a
`Host` (the per-call capability checker) set for the running thread. WASI is linked with no
preopened directories, no environment and no sockets, so the guest gets none of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import wasmtime
from wasmtime import component as wc

from plinth.extensions import memory
from plinth.extensions.memory import MemoryMeter
from plinth.extensions.models import (
    PLATFORM_MAX,
    Limits,
    PluginDeadline,
    PluginFailed,
    PluginInvalid,
    PluginOutOfFuel,
    PluginOutOfMemory,
    PluginOutputTooLarge,
    PluginTrapped,
)

log = logging.getLogger("plinth.extensions")
TICK_SECONDS = 0.005
WARM_INSTANCES = 8  # stateless plugins' instances kept warm per sandbox (worker process)
PACKAGE = "plinth:plugin"
WIT_VERSION = "0.1.0"
# What a store may hold besides its linear memory. wasmtime's memory limit is per memory, so a
# guest with twelve of them (multi-memory, or a core instance each) held twelve times its limit,
# and tables are host memory no limit counted (8 bytes an element: a table.grow of 200 million
# took 1.6 GB). Plugins built by componentize-py have one memory and two tables of some
# thousands of elements; one memory makes the limit the guest's whole linear memory.
MEMORIES = 1
TABLES = 8
TABLE_ELEMENTS = 1 << 18  # 2 MiB of host memory a table at most


class Host(Protocol):
    """The capabilities of one call; each method returns ("ok"|"err", text)."""

    def call(self, capability: str, func: str, args: tuple[Any, ...]) -> tuple[str, str]: ...


@dataclass
class Outcome:
    """What a call returned and what it cost."""

    tag: str  # "ok" | "err"
    payload: str
    fuel: int
    wall_ms: float
    # bytes of the instance's linear memory when the call returned (its peak, as linear memory
    # never shrinks); None: not measured
    peak_memory: int | None = None


# Each host interface: its functions and the capability each needs.
INTERFACES: dict[str, dict[str, str]] = {
    "log": {"log": "log"},
    "clock": {"now": "clock"},
    "kv": {"get": "kv", "set": "kv"},
    "http": {"fetch": "http"},
    "records": {
        "get": "records.read",
        "query": "records.read",
        "create": "records.write",
        "update": "records.write",
    },
}


@dataclass
class _Warm:
    """A stateless plugin's instance kept between calls."""

    store: wasmtime.Store
    instance: Any
    bases: frozenset[int] | None  # the base addresses of its linear memories (None: unknown)
    held: int | None  # bytes of linear memory when its last call returned (None: unmetered)


class Sandbox:
    """One wasmtime engine, its linker, the compiled-artifact cache and the epoch ticker."""

    def __init__(self, cache_dir: Path, measure_memory: bool = True) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        # No GC proposal: its heap is one more linear memory per store, under the limit again
        # and outside `MEMORIES` (a guest held twice its limit). No plugin toolchain we build
        # with emits it.
        config.wasm_gc = False
        # wasmtime's own allocator and copy-on-write memory images: the meter only reads the
        # memory map, so metering costs the engine nothing.
        self.engine = wasmtime.Engine(config)
        self.meter = _meter(self.engine) if measure_memory else None
        self.cache_dir = cache_dir
        self._components: dict[str, wc.Component] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._linker = self._link()
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._guests = 0  # guests running now (the ticker sleeps while there are none)
        self._guests_lock = threading.Lock()
        self._ticking = threading.Event()
        # reuse key → warm instances of stateless plugins, least recently used first
        self._warm: OrderedDict[str, _Warm] = OrderedDict()

    def warm_memories(self) -> int:
        """Linear memories held by warm instances (kept on purpose, not leaked)."""
        return sum(len(w.bases or ()) for w in self._warm.values())

    def settle(self) -> None:
        """Between calls: read which linear memories are mapped now, afresh (a worker does
        after a failed call, for `stray_memories`)."""
        if self.meter is not None:
            kept = {b for w in self._warm.values() for b in w.bases or ()}
            self.meter.settle(kept)

    def stray_memories(self) -> int | None:
        """Linear memories mapped at the last `settle` that no warm instance holds (0 when
        every call's store was freed); None when memory is not measured."""
        return None if self.meter is None else self.meter.others

    def _link(self) -> wc.Linker:
        linker = wc.Linker(self.engine)
        linker.add_wasip2()
        with linker.root() as root:
            for iface, funcs in INTERFACES.items():
                with root.add_instance(f"{PACKAGE}/{iface}@{WIT_VERSION}") as inst:
                    for func, capability in funcs.items():
                        inst.add_func(func, self._host_func(iface, func, capability))
        return linker

    def _host_func(self, iface: str, func: str, capability: str) -> Callable[..., Any]:
        def call(_store: Any, *args: Any) -> Any:
            host: Host | None = getattr(self._local, "host", None)
            if host is None:  # never expected: a call always sets its host first
                tag, text = "err", "no host context"
            else:
                tag, text = host.call(capability, f"{iface}.{func}", args)
            if iface == "log" or (iface == "clock"):
                return None if iface == "log" else text
            return wc.Variant(tag, text)

        return call

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the epoch ticker that enforces wall-clock deadlines."""
        if self._ticker is not None:
            return
        self._stopping.clear()

        def tick() -> None:
            # Only while a guest runs: an idle worker wakes no core 200 times a second. A
            # deadline counts ticks from when it is set, so the pauses change none.
            while self._ticking.wait() and not self._stopping.wait(TICK_SECONDS):
                self.engine.increment_epoch()

        self._ticker = threading.Thread(target=tick, name="plinth-epoch", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stopping.set()
        self._ticking.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
            self._ticker = None
        with self._guests_lock:
            if not self._guests:
                self._ticking.clear()

    @contextlib.contextmanager
    def _guest(self) -> Iterator[None]:
        """Guest code runs inside: the epoch ticks meanwhile."""
        with self._guests_lock:
            self._guests += 1
            self._ticking.set()
        try:
            yield
        finally:
            with self._guests_lock:
                self._guests -= 1
                if not self._guests:
                    self._ticking.clear()

    # -- compilation -----------------------------------------------------------------------
    def is_compiled(self, sha256: str) -> bool:
        """Whether a version is loaded or its compiled artifact is on disk (no compile due)."""
        return sha256 in self._components or artifact(self.cache_dir, sha256)

    def check(self, component: wc.Component, exports: list[str]) -> None:
        """Instantiate `component` once, as a call would: its imports must all be ours (WASI
        and the plugin interfaces) and it must export `exports`. Typed errors say why not."""
        store = wasmtime.Store(self.engine)
        store.set_fuel(10_000_000_000)
        store.set_epoch_deadline(max(1, int(10 / TICK_SECONDS)))
        # A component that cannot live within any call's limits is refused here, at publish.
        _limit(store, PLATFORM_MAX.memory_bytes)
        store.set_wasi(wasmtime.WasiConfig())
        self.start()
        try:
            with self._guest():
                instance = self._linker.instantiate(store, component)
            missing = [name for name in exports if instance.get_func(store, name) is None]
        except wasmtime.WasmtimeError as exc:
            reason = " ".join(str(exc).split())[:400]
            raise PluginInvalid(
                f"plugin.wasm does not link: {reason}", path="plugin.wasm"
            ) from None
        finally:
            store.close()  # its memory unmapped now, not whenever a traceback lets go of it
        if missing:
            raise PluginInvalid(
                f"plugin.wasm does not export {missing[0]!r}, which its manifest's extension "
                "points need",
                path=f"plugin.wasm.{missing[0]}",
            )

    def component(self, sha256: str, wasm_path: Path) -> tuple[wc.Component, bool]:
        """The compiled component for a plugin version; True when it was compiled just now."""
        found = self._components.get(sha256)
        if found is not None:
            return found, False
        with self._lock:
            found = self._components.get(sha256)
            if found is not None:
                return found, False
            compiled = self.cache_dir / f"{sha256}-{_engine_tag()}.cwasm"
            cold = True
            if compiled.exists():
                try:
                    found = wc.Component.deserialize_file(self.engine, str(compiled))
                except wasmtime.WasmtimeError:
                    found = None  # stale or damaged artifact: recompile below
            if found is None:
                data = wasm_path.read_bytes()
                if hashlib.sha256(data).hexdigest() != sha256:
                    raise PluginFailed(
                        "The stored plugin does not match its published hash", path="sha256"
                    )
                try:
                    found = wc.Component(self.engine, data)
                except wasmtime.WasmtimeError as exc:
                    reason = " ".join(str(exc).split())[:400]
                    raise PluginInvalid(
                        f"plugin.wasm is not a valid WebAssembly component: {reason}",
                        path="plugin.wasm",
                    ) from None
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                tmp = compiled.with_suffix(f".{threading.get_ident()}.tmp")
                tmp.write_bytes(found.serialize())
                tmp.replace(compiled)
            self._components[sha256] = found
            return found, cold

    # -- calls -----------------------------------------------------------------------------
    def call(
        self,
        component: wc.Component,
        export: str,
        args: tuple[Any, ...],
        limits: Limits,
        host: Host,
        reuse_key: str | None = None,
    ) -> Outcome:
        """Run one export under `limits`; guest failures become typed errors.

        A fresh store and instance per call, unless `reuse_key` names a warm instance of a
        stateless plugin (same tenant, same version): that one is called again with its fuel,
        deadline and memory limit set anew. An instance whose call failed is never reused;
        a store not kept is closed before the call returns (its memory unmapped).
        """
        self.start()
        warm = self._warm.pop(reuse_key, None) if reuse_key is not None else None
        if warm is not None and warm.held is not None and warm.held > limits.memory_bytes:
            # Grown under a larger limit (another extension point's, or before the tenant
            # lowered it): this call's limit would not hold, so a fresh instance answers.
            self._close(warm.store, warm.bases)
            warm = None
        if warm is not None:
            store, instance, bases = warm.store, warm.instance, warm.bases
        else:
            store = wasmtime.Store(self.engine)
            store.set_wasi(wasmtime.WasiConfig())  # no preopens, no env, no args, no sockets
            instance, bases = None, None
        meter = self.meter
        fresh = instance is None
        before = meter.begin() if meter is not None and fresh else None
        kept = False
        try:
            store.set_fuel(limits.fuel)
            store.set_epoch_deadline(max(1, int(limits.timeout_ms / 1000 / TICK_SECONDS)))
            _limit(store, limits.memory_bytes)
            self._local.host = host
            failure: PluginFailed | None = None
            result: Any = None
            started = time.perf_counter()
            try:
                with self._guest():
                    if instance is None:
                        instance = self._linker.instantiate(store, component)
                    func = instance.get_func(store, export)
                    if func is None:
                        failure = PluginTrapped(
                            f"The plugin does not export {export!r}", path=export
                        )
                    else:
                        result = func(store, *args)
            except wasmtime.WasmtimeError as exc:
                failure = classify(exc, limits, store)
            finally:
                self._local.host = None
            wall_ms = (time.perf_counter() - started) * 1000
            peak: int | None = None
            sizes = meter.end() if meter is not None else None  # the store is still open
            if fresh and meter is not None:
                # Not known when the map could not be read before the call or after it.
                bases = (
                    frozenset(sizes.keys() - before)
                    if sizes is not None and before is not None
                    else None
                )
            if sizes is not None and bases is not None:
                peak = sum(sizes.get(base, 0) for base in bases)
            if failure is None and not isinstance(result, wc.Variant):
                failure = PluginTrapped("The plugin returned no result")
            payload = ""
            if failure is None:
                payload = result.payload if isinstance(result.payload, str) else ""
                if len(payload) > limits.output_bytes:
                    failure = PluginOutputTooLarge(
                        f"The plugin returned {len(payload)} bytes; the limit is "
                        f"{limits.output_bytes}",
                        extra={"limit": limits.output_bytes},
                    )
            if failure is not None:
                raise _with_peak(failure, peak)
            fuel = limits.fuel - store.get_fuel()
            # An instance whose memories are not known is not kept: each later call of it
            # would go unmetered (or be told 0), and its memories never be told apart.
            if reuse_key is not None and (meter is None or bases is not None):
                self._warm[reuse_key] = _Warm(store, instance, bases, peak)
                kept = True
                while len(self._warm) > WARM_INSTANCES:
                    _, oldest = self._warm.popitem(last=False)
                    self._close(oldest.store, oldest.bases)
            return Outcome(result.tag, payload, fuel, wall_ms, peak)
        finally:
            if not kept:
                self._close(store, bases)

    def _close(self, store: wasmtime.Store, bases: frozenset[int] | None) -> None:
        """Free a store now (its memories unmapped), not whenever the GC gets to it."""
        store.close()
        if self.meter is not None:
            self.meter.unmapped(bases)


def _limit(store: wasmtime.Store, memory_bytes: int) -> None:
    """The store's limits: its linear memory, and how many memories and tables it may have."""
    store.set_limits(
        memory_size=memory_bytes,
        memories=MEMORIES,
        tables=TABLES,
        table_elements=TABLE_ELEMENTS,
    )


def _with_peak(error: PluginFailed, peak: int | None) -> PluginFailed:
    """Carry the call's peak memory to the metering of a failed call."""
    error.peak_memory = peak  # type: ignore[attr-defined]
    return error


def classify(exc: wasmtime.WasmtimeError, limits: Limits, store: wasmtime.Store) -> PluginFailed:
    """Map wasmtime's generic error to what happened (its message is all there is)."""
    text = str(exc)
    fuel_left = _fuel_left(store)
    if "all fuel consumed" in text or fuel_left == 0:
        return PluginOutOfFuel(
            f"The plugin used all of its {limits.fuel} fuel", extra={"limit": limits.fuel}
        )
    if "interrupt" in text:
        return PluginDeadline(
            f"The plugin ran longer than {limits.timeout_ms} ms",
            extra={"limit_ms": limits.timeout_ms},
        )
    if "memory" in text.lower() and ("limit" in text or "grow" in text or "MemoryError" in text):
        return PluginOutOfMemory(
            f"The plugin needed more than {limits.memory_bytes} bytes of memory",
            extra={"limit": limits.memory_bytes},
        )
    if "call stack exhausted" in text or "stack overflow" in text:
        return PluginTrapped(
            "The plugin exhausted its stack (too deep recursion)", extra={"trap": "stack_overflow"}
        )
    first = text.splitlines()[0] if text else "trap"
    trap = next((ln.strip() for ln in text.splitlines() if "wasm trap" in ln), first)
    return PluginTrapped(f"The plugin trapped: {trap[:300]}")


def _fuel_left(store: wasmtime.Store) -> int | None:
    try:
        return store.get_fuel()
    except wasmtime.WasmtimeError:
        return None


def _meter(engine: wasmtime.Engine) -> MemoryMeter | None:
    """The peak-memory meter, or None (logged once) where the memory map cannot tell it."""
    try:
        why = memory.probe(engine)
        if why is None:
            return MemoryMeter()
    except Exception as exc:  # a probe that cannot run is a meter we cannot trust
        why = f"the meter's self-test could not run: {exc}"
    log.warning("plugin peak-memory metering is off: %s; calls run without it", why)
    return None


def artifact(cache_dir: Path, sha256: str) -> bool:
    """Whether the compiled artifact of a component is on disk."""
    return (cache_dir / f"{sha256}-{_engine_tag()}.cwasm").exists()


def _engine_tag() -> str:
    # A serialized artifact only loads into the same wasmtime build and config ("nogc": the
    # GC proposal off; a cache shared with older servers keeps their artifacts apart).
    from importlib.metadata import version

    return f"wt{version('wasmtime')}-nogc"
