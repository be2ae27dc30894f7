"""A plugin worker process: runs one guest call at a time in the sandbox, for the executor.

The executor (`executor.py`) talks to it over its stdin/stdout with length-prefixed JSON
frames. A guest's host calls (kv, records, http, clock) travel to the server process and back
over the same pipe, so the capabilities stay checked where the platform's state lives; log
lines go one way (the guest gets nothing back from them), with the call's next frame.
The worker runs at the lowest CPU priority and is the first the kernel's OOM killer picks: a
spinning or hoarding guest slows plugins, never the server. A worker whose guest overruns its
deadline inside a blocking WASI call (sleep, poll), where wasmtime's epoch cannot interrupt
it, is killed by the executor; nothing of the server goes with it.

    python -m plinth.extensions.worker CACHE_DIR MEASURE_MEMORY(0|1)
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from plinth.errors import PlinthError
from plinth.extensions.models import MAX_LOG_LINES

HEADER = struct.Struct(">I")
MAX_FRAME = 64 << 20  # a guest's output is capped far below (PLATFORM_MAX.output_bytes)
WORKER_NICE = 10  # below the server's priority: CFS weight 110 against its 1024
LOG_DELAY = 0.01  # seconds a guest's log line may wait to share a write with the next frame
MAX_LOG_WAITING = 64 << 10  # bytes of log lines waiting at most (then written at once)


def _frame(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    return HEADER.pack(len(data)) + data


def read_frame(inp: BinaryIO) -> dict[str, Any] | None:
    head = _read_exactly(inp, HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    data = _read_exactly(inp, size)
    if data is None:
        return None
    message: dict[str, Any] = json.loads(data)
    return message


def _read_exactly(inp: BinaryIO, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = inp.read(left)  # a pipe may return less than asked
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _RemoteHost:
    """The guest's doors out, and the worker's only writer to the server.

    Each host call is a round trip to the server process. A log line is not (the guest gets
    nothing back from it): it waits at most LOG_DELAY for the call's next frame and goes in
    the same write, so a short call that logs wakes the server once, not once per line; a
    thread sends lines that waited that long (a guest may be blocked in WASI meanwhile, to be
    killed at its deadline: its lines are sent by then).
    """

    def __init__(self, inp: BinaryIO, out: BinaryIO) -> None:
        self.inp, self.out = inp, out
        self._lock = threading.Lock()  # one frame at a time on the pipe
        self._lines: list[bytes] = []  # log frames not sent yet
        self.logged = 0  # log lines of the current call
        self._size = 0
        self._waiting = threading.Event()
        threading.Thread(target=self._send_lines, name="plinth-log", daemon=True).start()

    def send(self, message: dict[str, Any]) -> None:
        """Write a frame, after the log lines waiting."""
        data = _frame(message)
        with self._lock:
            if self._lines:
                data = b"".join([*self._lines, data])
                self._lines.clear()
                self._size = 0
            self.out.write(data)
            self.out.flush()

    def call(self, capability: str, func: str, args: tuple[Any, ...]) -> tuple[str, str]:
        if func == "log.log":
            self.logged += 1
            if self.logged > MAX_LOG_LINES:  # the server keeps no more of a call's lines:
                return "ok", ""  # dropped here, not parsed there (one-way lines cost nothing)
            line = _frame({"op": "log", "args": args})
            with self._lock:
                self._lines.append(line)
                self._size += len(line)
                full = self._size >= MAX_LOG_WAITING
            if full:  # a chatty guest waits for the pipe, as it would line by line
                self._flush()
            else:
                self._waiting.set()
            return "ok", ""
        self.send({"op": "host", "capability": capability, "func": func, "args": args})
        reply = read_frame(self.inp)
        if reply is None:  # the server went away: end the call, then the worker
            return "err", "the host is gone"
        return str(reply.get("tag", "err")), str(reply.get("text", ""))

    def _flush(self) -> None:
        with self._lock:
            if not self._lines:
                return
            data = b"".join(self._lines)
            self._lines.clear()
            self._size = 0
            self.out.write(data)
            self.out.flush()

    def _send_lines(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # the pipe closed: the worker ends
            while True:
                self._waiting.wait()
                time.sleep(LOG_DELAY)
                self._waiting.clear()  # lines logged from here on set it again
                self._flush()


def _lower_priority() -> None:
    # The executor starts workers under `nice` already; one started without it lowers itself.
    with contextlib.suppress(OSError):
        mine, server = (
            os.getpriority(os.PRIO_PROCESS, 0),
            os.getpriority(os.PRIO_PROCESS, os.getppid()),
        )
        if mine < server + WORKER_NICE:
            os.nice(server + WORKER_NICE - mine)
    # SCHED_BATCH (Linux): the same CPU share as its nice level gives it, but a worker waking
    # up never preempts the server on its core; the server's requests run first, the guest's
    # deadline is unchanged.
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(OSError):  # raising one's own OOM score needs no privilege
        Path("/proc/self/oom_score_adj").write_text("1000")


def serve(inp: BinaryIO, out: BinaryIO, cache_dir: Path, measure_memory: bool) -> None:
    """Answer call and compile requests until the server closes the pipe."""
    from plinth.extensions.models import Limits, PluginFailed
    from plinth.extensions.sandbox import Sandbox

    sandbox = Sandbox(cache_dir, measure_memory=measure_memory)
    sandbox.settle()
    host = _RemoteHost(inp, out)
    host.send({"op": "ready", "metered": sandbox.meter is not None})
    while (request := read_frame(inp)) is not None:
        op = request.get("op")
        wasm = Path(str(request.get("wasm", "")))
        sha256 = str(request.get("sha256", ""))
        try:
            component, cold = sandbox.component(sha256, wasm)
            if op == "load":  # ahead of calls: a new worker joining the pool
                host.send({"op": "loaded", "cold": cold})
                continue
            if op == "compile":
                sandbox.check(component, list(request.get("exports") or []))
                host.send({"op": "compiled", "cold": cold})
                continue
            limits = Limits(**request["limits"])
            if request.get("started"):  # the deadline counts from here (a load came first)
                host.send({"op": "started"})
            reuse = request.get("reuse")
            host.logged = 0
            outcome = sandbox.call(
                component,
                request["export"],
                tuple(request["args"]),
                limits,
                host,
                reuse_key=str(reuse) if reuse else None,
            )
            host.send(
                {
                    "op": "done",
                    "tag": outcome.tag,
                    "payload": outcome.payload,
                    "fuel": outcome.fuel,
                    "wall_ms": outcome.wall_ms,
                    "peak": outcome.peak_memory,
                    "cold": cold,
                    "live": _live(sandbox),
                },
            )
        except PlinthError as exc:
            sandbox.settle()  # a failed call's store is gone before its answer says so (live)
            host.send(_failure(exc, locals().get("cold", False), sandbox))
        except Exception as exc:  # wasmtime refusing the bytes, or a bug: a typed failure
            sandbox.settle()
            failure = PluginFailed(f"The plugin could not run: {str(exc)[:300]}")
            host.send(_failure(failure, False, sandbox))


def _failure(exc: PlinthError, cold: bool, sandbox: Any) -> dict[str, Any]:
    return {
        "op": "failed",
        "code": exc.code,
        "detail": exc.detail,
        "path": exc.path,
        "extra": exc.extra,
        "peak": getattr(exc, "peak_memory", None),
        "cold": cold,
        "live": _live(sandbox),
    }


def _live(sandbox: Any) -> int | None:
    """Linear memories mapped that no warm instance holds (a store that outlived its call),
    as of the worker's start or its last failed call; None: not measured."""
    found: int | None = sandbox.stray_memories()
    return found


def main() -> None:
    cache_dir, measure = Path(sys.argv[1]), sys.argv[2] == "1"
    # The protocol owns fd 0 and 1; anything else printed (a library's warning) goes to stderr.
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _lower_priority()
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(inp, out, cache_dir, measure)


if __name__ == "__main__":
    main()
