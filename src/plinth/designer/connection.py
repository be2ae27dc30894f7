"""One editor's WebSocket in a draft room: its send queue, its budgets, its acknowledgements.

Fan-out never waits on a client. A message for a connection with nothing in flight is written
to its socket at once, in the fan-out's own call (started eagerly, like Python 3.12's eager
tasks: a WebSocket send that does not have to wait for the socket completes without ever
suspending, so no task is created for it); only a send that must wait (the socket's buffer is
full) continues in a task of its own, and what is pushed meanwhile queues behind it. A
connection that falls `Limits.max_send_queue_bytes` behind is closed (it resyncs on
reconnect). A room of N editors thus costs N socket writes per fan-out, not N tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from plinth.designer import protocol as p
from plinth.governance.principal import Principal

# coroutine functions: a send is started eagerly (see the module's docstring)
Send = Callable[[bytes], Coroutine[Any, Any, None]]
Close = Callable[[int, str], Awaitable[None]]


@dataclass
class Limits:
    """Guards per connection and per room."""

    max_update_bytes: int = 256 * 1024
    updates_per_second: float = 60.0
    burst: int = 120
    max_doc_bytes: int = 8 * 1024 * 1024
    settle_seconds: float = 0.25
    compact_every: int = 500
    idle_compact_seconds: float = 30.0
    sync_interval_seconds: float = 5.0
    # CPU spent applying one connection's updates: `cpu_per_second` sustained, `cpu_burst`
    # at once (some tiny, valid-looking updates cost 200 ms to apply).
    cpu_per_second: float = 0.25
    cpu_burst: float = 0.75
    # how far a connection's unsent messages may grow before it is closed as too slow
    max_send_queue_bytes: int = 8 * 1024 * 1024
    # updates appended to the log in one transaction at most
    batch_max: int = 500
    # How long the log writer lets accepted updates gather before a transaction (the
    # acknowledgement waits for it; the fan-out to peers never does).
    flush_linger_seconds: float = 0.05
    # A room's fan-outs may take this share of the CPU time (in bursts of up to
    # `fan_out_burst_seconds` of it) before the next waits, at most `fan_out_max_seconds`:
    # fan-outs to 200 sockets costing 5 ms each come every 20 ms, with what arrived meanwhile
    # merged; a room of 50 editors, whose per-update fan-outs take ~15%, never waits.
    fan_out_share: float = 0.25
    fan_out_burst_seconds: float = 0.01
    fan_out_max_seconds: float = 0.05


SLOW = 1013  # WebSocket "try again later": the client fell too far behind the room
# What a connection gets once everything it sent so far is in the log (see service.py).
ACK = p.sync_message(p.STEP2, p.EMPTY_UPDATE)


async def _finish(step: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Drive `step`, a coroutine started outside any task that suspended on `waiting` (the
    future it awaits, or None for a bare yield), to its end."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                # What a task does with a future its coroutine yields: take it over.
                waiting._asyncio_future_blocking = False
                await waiting
        except BaseException as exc:  # cancelled, or the awaited future failed: pass it in
            try:
                waiting = step.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting = step.send(None)
        except StopIteration:
            return


@dataclass(eq=False)
class Connection:
    """One WebSocket editor (or viewer) in a room."""

    principal: Principal
    can_edit: bool
    send: Send
    close: Close
    client_ids: set[int] = field(default_factory=set)
    tokens: float = 0.0
    last: float = field(default_factory=time.monotonic)
    closed: bool = False
    refused: int = 0
    cpu_debt: float = 0.0
    cpu_last: float = field(default_factory=time.monotonic)
    max_queue_bytes: int = Limits.max_send_queue_bytes
    queue: deque[bytes] = field(default_factory=deque)
    queued_bytes: int = 0
    # the task finishing a send that had to wait, then draining the queue (None: idle)
    sender: asyncio.Task[None] | None = None
    # The answer to the client's sync step 1 goes before any acknowledgement: a client takes
    # the first sync step 2 it gets for the room's state (it is synced from then on).
    answered: bool = False
    ack_owed: bool = False

    def push(self, message: bytes) -> None:
        """Send a message without waiting for the socket: a slow reader never stalls the
        room. One that falls `max_queue_bytes` behind is closed; its client resyncs."""
        if self.closed:
            return
        if self.sender is None:  # nothing in flight: straight to the socket
            self._send_now(message)
            return
        if self.queued_bytes + len(message) > self.max_queue_bytes:
            self.closed = True
            self.queue.clear()
            self.queued_bytes = 0
            self.sender.cancel()
            self.sender = asyncio.get_running_loop().create_task(self._close_slow())
            return
        self.queue.append(message)
        self.queued_bytes += len(message)

    def _send_now(self, message: bytes) -> None:
        step = self.send(message)
        try:
            waiting = step.send(None)
        except StopIteration:
            return  # written
        except Exception:  # a dead socket leaves via its own handler
            self.closed = True
            return
        self.sender = asyncio.get_running_loop().create_task(self._drain(step, waiting))

    async def _drain(self, step: Coroutine[Any, Any, None], waiting: Any) -> None:
        """Finish the send that had to wait, then send what queued behind it."""
        try:
            await _finish(step, waiting)
            while self.queue:
                message = self.queue.popleft()
                self.queued_bytes -= len(message)
                await self.send(message)
        except Exception:  # a dead socket leaves via its own handler
            self.closed = True
            self.queue.clear()
            self.queued_bytes = 0
        finally:
            if self.sender is asyncio.current_task():
                self.sender = None

    def acknowledge(self) -> None:
        """Tell the client that all it sent so far is logged (an empty sync step 2)."""
        if self.answered:
            self.push(ACK)
        else:
            self.ack_owed = True

    def answer(self, state: bytes) -> None:
        """The sync step 2 answering the client's step 1, then an acknowledgement it is owed."""
        self.push(p.sync_message(p.STEP2, state))
        self.answered = True
        if self.ack_owed:
            self.ack_owed = False
            self.push(ACK)

    async def drained(self) -> None:
        """Wait until what is queued has gone out (a close must not overtake a resync)."""
        sender = self.sender
        if sender is not None and not sender.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(sender), 5)

    async def _close_slow(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.close(SLOW, "too far behind the room; reconnect"), 5)

    def stop(self) -> None:
        """The socket is gone: drop what was still queued for it."""
        self.closed = True
        self.queue.clear()
        self.queued_bytes = 0
        if self.sender is not None and not self.sender.done():
            self.sender.cancel()

    def allow(self, limits: Limits) -> bool:
        """Token bucket: `updates_per_second` sustained, `burst` at once."""
        now = time.monotonic()
        self.tokens = min(limits.burst, self.tokens + (now - self.last) * limits.updates_per_second)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def cpu_left(self, limits: Limits) -> bool:
        """Whether this connection still has CPU budget (the debt drains at the budget rate)."""
        now = time.monotonic()
        self.cpu_debt = max(0.0, self.cpu_debt - (now - self.cpu_last) * limits.cpu_per_second)
        self.cpu_last = now
        return self.cpu_debt <= limits.cpu_burst


__all__ = ["ACK", "SLOW", "Close", "Connection", "Limits", "Send"]
