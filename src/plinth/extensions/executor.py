"""The plugin executor: a bounded pool of worker processes, fair across tenants.

Plugin calls never run on the request path's threads. Each runs in a worker process
(`worker.py`) at the lowest CPU priority, so a spinning guest takes only the CPU the server
leaves over. Why processes and not threads, although wasmtime releases the GIL while guest code
runs: a guest blocked inside a WASI call (`time.sleep`, `poll`) sits in wasmtime's own host
code, where the epoch deadline cannot interrupt it. A thread would stay blocked for as long as
the guest asked, past every deadline; a process is killed at the deadline and replaced.

Admission is fair: at most `capacity` calls run at once, each tenant at most `per_tenant` of
them; a free worker goes to the next tenant in round-robin order that has a call waiting and is
under its share. A call that cannot start before its deadline is refused (429 when its tenant
holds its whole share, else 503, both with Retry-After), as is one that finds its tenant's queue
full, at once. Calls made by a plugin's own host calls (a record write that runs a before-write
hook) are admitted past the caps: the outer call already holds a worker and waits for them.

Worker processes start off the request path: the pool is filled in the background from the
first call on, with one spare beyond `capacity`, so a call never waits for a process to start,
not even right after a worker was killed (the spare takes its place while a replacement starts).
A worker starts at its low priority from its first instruction (`nice`), and a new one loads
the components the pool last ran before it joins, so a kill costs the server no CPU at its own
priority and the next call no component load. A worker is started from a thread with
`subprocess` (vfork, then exec), not with the event loop's own subprocess support: uvloop forks
the whole server on the loop, copying the page tables of its heap (tens of milliseconds per
worker with a few hundred MB, more on a loaded machine), and every kill of a guest asleep past
its deadline would stall every request for that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from plinth.extensions import models
from plinth.extensions.models import (
    Limits,
    PluginBusy,
    PluginDeadline,
    PluginFailed,
    PluginTenantBusy,
)
from plinth.extensions.sandbox import Outcome
from plinth.extensions.worker import HEADER, MAX_FRAME, WORKER_NICE

log = logging.getLogger("plinth.extensions")
# After its deadline a guest's epoch interrupt stops it within a tick; one still running this
# much later is blocked inside a WASI call and its worker is killed.
KILL_GRACE = 0.25
SPAWN_TIMEOUT = 60.0  # a worker imports wasmtime and checks its memory meter once
SPARE = 1  # idle workers kept beyond `capacity`: a killed worker's place is taken at once
PRELOAD = 4  # components a new worker loads before it joins (the most recently called)
NICE = shutil.which("nice")  # starts a worker at its priority (worker.WORKER_NICE) from exec


class AsyncHost(Protocol):
    """The capabilities of one call, served in the server process."""

    async def call(self, capability: str, func: str, args: list[Any]) -> tuple[str, str]: ...


@dataclass
class _Waiter:
    tenant: str
    future: asyncio.Future[None]


class _Process:
    """A worker process started off the event loop (`subprocess.Popen` in a thread)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()  # reaps it once it has exited (waitpid, WNOHANG)

    def kill(self) -> None:
        self.popen.kill()

    async def wait(self) -> int:
        # No event tells the loop about a child it did not start itself: ask (a killed worker
        # has exited by the first or second time).
        while (code := self.popen.poll()) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return code

    async def reap(self) -> None:
        """Collect a killed process's exit status soon, so it does not linger as a zombie."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait(), 10)


@dataclass(eq=False)  # workers are told apart by identity
class _Worker:
    process: _Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    metered: bool
    live: int | None = None  # linear memories its last call left allocated (0 when clean)
    loaded: set[str] = field(default_factory=set)  # components it has loaded

    async def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        self.writer.write(HEADER.pack(len(data)) + data)
        await self.writer.drain()

    async def receive(self) -> dict[str, Any]:
        head = await self.reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(head)
        if size > MAX_FRAME:
            raise ConnectionError(f"a worker sent a frame of {size} bytes")
        message: dict[str, Any] = json.loads(await self.reader.readexactly(size))
        return message

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


@dataclass
class _Admission:
    """Who runs and who waits (all on the event loop: no locks needed)."""

    capacity: int
    per_tenant: int
    queue_per_tenant: int
    running: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, deque[_Waiter]] = field(default_factory=dict)
    order: deque[str] = field(default_factory=deque)  # tenants with waiters, round robin
    total: int = 0

    def may_start(self, tenant: str) -> bool:
        return self.total < self.capacity and self.running.get(tenant, 0) < self.per_tenant

    def start(self, tenant: str) -> None:
        self.running[tenant] = self.running.get(tenant, 0) + 1
        self.total += 1

    def finish(self, tenant: str) -> None:
        left = self.running.get(tenant, 0) - 1
        if left > 0:
            self.running[tenant] = left
        else:
            self.running.pop(tenant, None)
        self.total -= 1
        self.dispatch()

    def dispatch(self) -> None:
        """Hand free places to waiting calls, one tenant after another."""
        skipped = 0
        while self.order and self.total < self.capacity and skipped < len(self.order):
            tenant = self.order[0]
            queue = self.waiting.get(tenant)
            while queue and queue[0].future.done():  # gave up (deadline) meanwhile
                queue.popleft()
            if not queue:
                self.order.popleft()
                self.waiting.pop(tenant, None)
                continue
            if self.running.get(tenant, 0) >= self.per_tenant:
                self.order.rotate(-1)
                skipped += 1
                continue
            waiter = queue.popleft()
            self.start(tenant)
            waiter.future.set_result(None)
            self.order.rotate(-1)  # the next free place goes to the next tenant
            skipped = 0


class PluginExecutor:
    """Runs plugin calls in worker processes with per-tenant caps and fair queuing."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        measure_memory: bool,
        capacity: int,
        per_tenant: int,
        queue_per_tenant: int | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.measure_memory = measure_memory
        self.admission = _Admission(
            capacity=max(1, capacity),
            per_tenant=max(1, min(per_tenant, capacity)),
            queue_per_tenant=queue_per_tenant or 4 * max(1, per_tenant),
        )
        self._idle: list[_Worker] = []
        self._recent: dict[str, Path] = {}  # components called lately, oldest first
        self._all: set[_Worker] = set()
        self._spawning = 0
        self._dead: set[_Process] = set()  # killed, until reaped
        self._nested = 0  # nested calls running (they may take workers past capacity)
        self._available = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def stop(self) -> None:
        """End every worker (their calls fail as the server stops)."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        for worker in list(self._all):
            with contextlib.suppress(Exception):
                worker.writer.close()
            worker.kill()
        for process in [*(w.process for w in self._all), *self._dead]:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), 5)
        self._all.clear()
        self._dead.clear()
        self._idle.clear()

    @property
    def workers(self) -> int:
        """Worker processes alive now."""
        return len(self._all)

    async def filled(self) -> None:
        """Wait until the pool holds its workers (it fills from the first call on)."""
        self._replenish()
        while self._spawning or len(self._all) < self.admission.capacity + SPARE:
            self._available.clear()
            await self._available.wait()

    async def warm(
        self, components: list[tuple[str, Path]], limit_s: float = SPAWN_TIMEOUT
    ) -> None:
        """Fill the pool now, each worker loading `components` (sha256, wasm) before it joins,
        instead of from the first call on: a process started to run calls (`plinth worker`)
        pays for its workers as it starts, not during its first calls. Waits `limit_s` at
        most (a worker that cannot start is replaced in the background as usual)."""
        for sha256, wasm in components[-PRELOAD:]:
            self._recent.pop(sha256, None)
            self._recent[sha256] = wasm
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.filled(), limit_s)
        for worker in [w for w in self._idle if not self._recent.keys() <= w.loaded]:
            if worker in self._idle:  # not taken by a call meanwhile
                self._idle.remove(worker)
                self._release(worker, await self._preload(worker))

    def live_memories(self) -> int:
        """Linear memories the workers' calls left mapped (0: every store freed), as each
        worker last looked: after its last failed call (a trap, fuel, memory, deadline)."""
        return sum(w.live or 0 for w in self._all)

    async def _spawn(self) -> _Worker:
        argv = [
            *([NICE, "-n", str(WORKER_NICE)] if NICE else []),
            sys.executable,
            "-m",
            "plinth.extensions.worker",
            str(self.cache_dir),
            "1" if self.measure_memory else "0",
        ]
        # From a thread (vfork): the loop keeps serving while the process starts (see above).
        starting = asyncio.ensure_future(asyncio.to_thread(_popen, argv))
        try:
            process = _Process(await asyncio.shield(starting))
        except asyncio.CancelledError:  # the executor stopping: not a process left behind
            starting.add_done_callback(_kill_started)
            raise
        try:
            reader, writer = await _streams(process.popen)
        except BaseException:
            self._bury(process)
            raise
        worker = _Worker(process, reader, writer, metered=False)
        try:
            ready = await asyncio.wait_for(worker.receive(), SPAWN_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            self._bury(process, writer)
            raise PluginFailed("A plugin worker could not start") from exc
        except asyncio.CancelledError:  # the executor stopping: not a process left behind
            self._bury(process, writer)
            raise
        worker.metered = bool(ready.get("metered"))
        self._all.add(worker)
        return worker

    async def _worker(self, sha256: str | None = None, fill: bool = True) -> _Worker:
        """An idle worker (one that has `sha256` loaded, if any), else a new one. The pool is
        filled up to `capacity` in the background from the first call on, and refilled when a
        worker is killed, so a call rarely waits for a process to start."""
        if fill:
            self._replenish()
        while True:
            self._idle = [w for w in self._idle if w.process.returncode is None]
            if self._idle:
                warm = [w for w in self._idle if sha256 in w.loaded]
                worker = warm[-1] if warm else self._idle[-1]
                self._idle.remove(worker)
                return worker
            full = len(self._all) + self._spawning >= self.admission.capacity + self._nested
            if full or self._spawning:  # a worker starting is as quick as one started now
                self._available.clear()
                await self._available.wait()  # a call is ending, or a worker starting
                continue
            return await self._spawn()

    def _replenish(self) -> None:
        missing = self.admission.capacity + SPARE - len(self._all) - self._spawning
        for _ in range(max(0, missing) if not self._stopping else 0):
            self._spawning += 1
            task = asyncio.get_running_loop().create_task(self._spawn_idle())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _spawn_idle(self) -> None:
        try:
            worker = await self._spawn()
            healthy = not self._stopping and await self._preload(worker)
        except PluginFailed:
            log.warning("a plugin worker could not start")
            return
        finally:
            self._spawning -= 1  # counted as starting until it has loaded
        self._release(worker, healthy)

    async def _preload(self, worker: _Worker) -> bool:
        """Load what the pool runs lately into a new worker (at its priority, off any call)."""
        for sha256, wasm in list(self._recent.items()):
            try:
                await worker.send({"op": "load", "sha256": sha256, "wasm": str(wasm)})
                if (await worker.receive()).get("op") == "loaded":
                    worker.loaded.add(sha256)
            except (asyncio.IncompleteReadError, ConnectionError):
                self._recent.pop(sha256, None)  # it crashed the worker: not again
                return False
        return True

    def _release(self, worker: _Worker, healthy: bool) -> None:
        self._available.set()
        if healthy and not self._stopping and worker.process.returncode is None:
            self._idle.append(worker)
            return
        self._all.discard(worker)
        if not self._stopping:
            self._replenish()
        self._bury(worker.process, worker.writer)

    def _bury(self, process: _Process, writer: asyncio.StreamWriter | None = None) -> None:
        """Kill a worker process and reap it in the background (kept until then, so stop()
        can wait for it)."""
        if writer is not None:
            writer.close()  # its stdout closes at the end of file
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        self._dead = {p for p in self._dead if p.returncode is None}
        self._dead.add(process)
        if not self._stopping:  # else stop() waits for it
            task = asyncio.get_running_loop().create_task(process.reap())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- admission ---------------------------------------------------------------------------
    async def _admit(self, tenant: str, deadline: float, nested: bool) -> None:
        adm = self.admission
        if nested:  # the outer call holds a place and waits for this one
            adm.running[tenant] = adm.running.get(tenant, 0)
            return
        if not adm.waiting and adm.may_start(tenant):
            adm.start(tenant)
            return
        queue = adm.waiting.setdefault(tenant, deque())
        if len(queue) >= adm.queue_per_tenant:
            raise self._busy(tenant, "its queue is full")
        waiter = _Waiter(tenant, asyncio.get_running_loop().create_future())
        queue.append(waiter)
        if tenant not in adm.order:
            adm.order.append(tenant)
        adm.dispatch()
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), deadline - time.monotonic())
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():
                return  # admitted at the very last moment: run it
            waiter.future.cancel()
            raise self._busy(tenant, "no worker was free before its deadline") from None
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                adm.finish(tenant)  # admitted, but the caller went away
            else:
                waiter.future.cancel()
            raise

    def refuse_early(self, tenant: str) -> None:
        """Refuse a call now, before any work for it, if its tenant's queue is already full
        (a tenant flooding calls gets its 429s for the price of a dictionary lookup)."""
        refused = self.refusal(tenant)
        if refused is not None:
            raise refused

    def refusal(self, tenant: str) -> PluginBusy | None:
        """What `refuse_early` would raise for a call of `tenant` now, if anything."""
        adm = self.admission
        if len(adm.waiting.get(tenant, ())) >= adm.queue_per_tenant:
            return self._busy(tenant, "its queue is full")
        return None

    def _busy(self, tenant: str, why: str) -> PluginBusy:
        adm = self.admission
        retry = {"Retry-After": "1"}
        extra = {"capacity": adm.capacity, "per_tenant": adm.per_tenant}
        if adm.running.get(tenant, 0) >= adm.per_tenant:
            return PluginTenantBusy(
                f"This tenant already runs {adm.per_tenant} plugin call(s) at once and {why}; "
                "retry later",
                headers=retry,
                extra=extra,
            )
        return PluginBusy(
            f"Every plugin worker is busy and {why}; retry later", headers=retry, extra=extra
        )

    # -- calls -------------------------------------------------------------------------------
    async def compile(self, sha256: str, wasm: Path, exports: list[str]) -> bool:
        """Compile (and link-check) a component in a worker; True when it compiled now."""
        worker = await self._worker(fill=False)  # publishing alone starts no pool
        healthy = False
        try:
            await worker.send(
                {"op": "compile", "sha256": sha256, "wasm": str(wasm), "exports": exports}
            )
            reply = await worker.receive()
            healthy = True
            if reply.get("op") == "compiled":
                worker.loaded.add(sha256)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # The compiler itself died on these bytes: the package is at fault.
            raise models.PluginInvalid(
                "plugin.wasm crashed the compiler", path="plugin.wasm"
            ) from exc
        finally:
            self._release(worker, healthy)
        if reply.get("op") == "failed":
            raise _error(reply)
        return bool(reply.get("cold"))

    async def call(
        self,
        tenant: str,
        sha256: str,
        wasm: Path,
        export: str,
        args: tuple[Any, ...],
        limits: Limits,
        host: AsyncHost,
        *,
        nested: bool = False,
        reuse: bool = False,
    ) -> tuple[Outcome, bool]:
        """Run one call; returns its outcome and whether the component was compiled for it."""
        arrived = time.monotonic()
        await self._admit(tenant, arrived + limits.timeout_ms / 1000, nested)
        self._recent.pop(sha256, None)
        self._recent[sha256] = wasm
        if len(self._recent) > PRELOAD:
            del self._recent[next(iter(self._recent))]
        self._nested += nested
        try:
            worker = await self._worker(sha256)
        except BaseException:
            self._nested -= nested
            if not nested:
                self.admission.finish(tenant)
            raise
        healthy = False
        try:
            outcome, cold, healthy = await self._run(
                worker, sha256, wasm, export, args, limits, host, tenant if reuse else None
            )
            worker.loaded.add(sha256)
            return outcome, cold
        finally:
            self._nested -= nested
            self._release(worker, healthy)
            if not nested:
                self.admission.finish(tenant)

    async def _run(
        self,
        worker: _Worker,
        sha256: str,
        wasm: Path,
        export: str,
        args: tuple[Any, ...],
        limits: Limits,
        host: AsyncHost,
        reuse_for: str | None = None,
    ) -> tuple[Outcome, bool, bool]:
        # The guest's wall clock starts now when the worker has the component loaded; else in
        # the worker once it is ("started"): a cold load (deserialize, or compile) has its own
        # allowance before that.
        loading = sha256 not in worker.loaded
        await worker.send(
            {
                "op": "call",
                "sha256": sha256,
                "wasm": str(wasm),
                "export": export,
                "args": list(args),
                "limits": limits.as_dict(),
                # a stateless plugin's warm instance is kept for this tenant only
                "reuse": f"{reuse_for}/{sha256}" if reuse_for is not None else None,
                "started": loading,
            }
        )
        loop = asyncio.get_running_loop()
        kill_at = loop.time() + (SPAWN_TIMEOUT if loading else _allowed(limits))
        while True:
            try:
                async with asyncio.timeout_at(kill_at):
                    message = await worker.receive()
            except TimeoutError:
                worker.kill()  # blocked in a WASI call (sleep, poll) past its deadline
                raise _deadline(limits) from None
            except (asyncio.IncompleteReadError, ConnectionError):
                raise PluginFailed(
                    "The plugin's worker process died during the call (killed by the system, "
                    "or a crash in the sandbox); the server is unaffected"
                ) from None
            op = message.get("op")
            if op == "started":
                kill_at = loop.time() + _allowed(limits)
                continue
            if op == "log":  # one way: the guest is not waiting for it
                await host.call("log", "log.log", list(message.get("args") or []))
                continue
            if op == "host":
                tag, text = await host.call(
                    str(message.get("capability")),
                    str(message.get("func")),
                    list(message.get("args") or []),
                )
                await worker.send({"op": "reply", "tag": tag, "text": text})
                continue
            worker.live = message.get("live")
            if op == "done":
                return (
                    Outcome(
                        str(message["tag"]),
                        str(message["payload"]),
                        int(message["fuel"]),
                        float(message["wall_ms"]),
                        message.get("peak"),
                    ),
                    bool(message.get("cold")),
                    True,
                )
            error = _error(message)
            error.cold = bool(message.get("cold"))  # type: ignore[attr-defined]
            raise error


def _allowed(limits: Limits) -> float:
    """Seconds a started call may take before its worker is killed."""
    return limits.timeout_ms / 1000 + KILL_GRACE


def _popen(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)


def _kill_started(started: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    if not started.cancelled() and started.exception() is None:
        started.result().kill()


async def _streams(
    popen: subprocess.Popen[bytes],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The event loop's streams over a worker's stdout and stdin."""
    assert popen.stdin is not None and popen.stdout is not None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_FRAME + HEADER.size, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), popen.stdout)
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), popen.stdin
    )
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


def _deadline(limits: Limits) -> PluginDeadline:
    return PluginDeadline(
        f"The plugin ran longer than {limits.timeout_ms} ms",
        extra={"limit_ms": limits.timeout_ms},
    )


_ERRORS: dict[str, type[PluginFailed]] = {
    cls.code: cls
    for cls in (
        models.PluginFailed,
        models.PluginTrapped,
        models.PluginOutOfFuel,
        models.PluginOutOfMemory,
        models.PluginDeadline,
        models.PluginInvalidOutput,
        models.PluginOutputTooLarge,
        models.PluginInvalid,
        models.PluginError,
    )
}


def _error(message: dict[str, Any]) -> PluginFailed:
    cls = _ERRORS.get(str(message.get("code")), PluginFailed)
    error = cls(
        str(message.get("detail", "The plugin failed")),
        path=message.get("path"),
        extra=message.get("extra") or {},
    )
    error.peak_memory = message.get("peak")  # type: ignore[attr-defined]
    return error


def default_capacity() -> int:
    """Workers by default: two per core (half of them may wait on host I/O), at least 2."""
    import os

    return max(2, 2 * (os.cpu_count() or 1))
