"""The same plugin component run on bare wasmtime, as anyone embedding it would: the default
engine configuration (copy-on-write memory images, pooling off, no fuel, no epochs), stub
imports for the component's world (`plinth:plugin`, read from its WIT, not from Plinth's code),
WASI with nothing granted. Nothing here imports Plinth.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as wc

WORLD = "plinth:plugin"
VERSION = "0.1.0"
# interface -> functions that return result<string, string> (log returns nothing, clock a string)
RESULTS = {
    "records": ("get", "query", "create", "update"),
    "http": ("fetch",),
    "kv": ("get", "set"),
}


class RawWasm:
    """One engine and linker; the component compiled once (cached on disk by content)."""

    def __init__(self, wasm: Path, cache_dir: Path) -> None:
        self.engine = wasmtime.Engine()  # the default configuration
        data = wasm.read_bytes()
        tag = importlib.metadata.version("wasmtime")
        key = hashlib.sha256(data + tag.encode()).hexdigest()[:32]
        artifact = cache_dir / f"raw-{key}.cwasm"
        if artifact.exists():
            self.component = wc.Component.deserialize_file(self.engine, str(artifact))
        else:
            self.component = wc.Component(self.engine, data)
            cache_dir.mkdir(parents=True, exist_ok=True)
            artifact.write_bytes(self.component.serialize())
        self.linker = wc.Linker(self.engine)
        self.linker.add_wasip2()
        with self.linker.root() as root:
            with root.add_instance(f"{WORLD}/log@{VERSION}") as log:
                log.add_func("log", lambda _store, _level, _message: None)
            with root.add_instance(f"{WORLD}/clock@{VERSION}") as clock:
                clock.add_func("now", lambda _store: "2026-01-01T00:00:00Z")
            for iface, funcs in RESULTS.items():
                with root.add_instance(f"{WORLD}/{iface}@{VERSION}") as inst:
                    for func in funcs:
                        inst.add_func(func, lambda _store, *_args: wc.Variant("err", "denied"))

    def instantiate(self) -> tuple[wasmtime.Store, Any]:
        store = wasmtime.Store(self.engine)
        store.set_wasi(wasmtime.WasiConfig())
        instance = self.linker.instantiate(store, self.component)
        return store, instance.get_func(store, "action")

    def call_fresh(self, name: str, payload: str) -> str:
        """Instantiate and call: a new store and instance per call."""
        store, func = self.instantiate()
        return _ok(func(store, name, payload))


class WarmInstance:
    """One instance kept and called again and again."""

    def __init__(self, raw: RawWasm) -> None:
        self.store, self.func = raw.instantiate()

    def call(self, name: str, payload: str) -> str:
        return _ok(self.func(self.store, name, payload))


def _ok(result: Any) -> str:
    if not isinstance(result, wc.Variant) or result.tag != "ok":
        raise RuntimeError(f"the call failed: {result!r}")
    return str(result.payload)
