"""Values read from the database, trusted for a short while: the hot path's lookups (tokens,
tenants) without a round trip per request.

A value is used for `trust` seconds after it was read; then the next caller reads it again,
and callers arriving meanwhile wait for that one read instead of each sending their own (a
busy server would otherwise send one per request in flight every time the window closes).
The owner drops values at once when it changes them (`forget`), and hears of changes made
elsewhere through the cluster relay; `trust` bounds how late a change no event reached is seen.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    def __init__(self, trust: float, limit: int = 10_000) -> None:
        self.trust = trust
        self.limit = limit  # entries kept at most: many distinct keys cannot grow it for ever
        self._values: OrderedDict[K, tuple[V, float]] = OrderedDict()  # oldest read first
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._forgets = 0  # how many times values were dropped: a read overtaken keeps nothing

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The value of `key`: trusted if read within `trust` seconds, else `load()`ed."""
        while True:
            found = self._values.get(key)
            if found is not None and time.monotonic() - found[1] < self.trust:
                return found[0]
            pending = self._loading.get(key)
            if pending is None:
                return await self._load(key, load)
            await asyncio.wait({pending})
            if not pending.cancelled():  # the reader was cancelled: read again ourselves
                return pending.result()

    def peek(self, key: K) -> V | None:
        """The value of `key` if it is trusted now, else None: nothing is read."""
        found = self._values.get(key)
        if found is not None and time.monotonic() - found[1] < self.trust:
            return found[0]
        return None

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        began = self._forgets
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            self._values.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
        # A change dropped values while this read was under way: what it read may be from
        # before that change, so it answers its own callers and is not kept for anyone else.
        if self._forgets == began:
            self._values.pop(key, None)  # read again: now the newest
            if len(self._values) >= self.limit:  # the oldest read goes, not everything at once
                self._values.popitem(last=False)
            self._values[key] = (value, time.monotonic())
        future.set_result(value)
        return value

    def forget(self, key: K | None = None) -> None:
        """Drop one value (or all): the next `get` reads it again, even while a read of it
        that began before is still under way."""
        self._forgets += 1
        if key is None:
            self._values.clear()
            self._loading.clear()
        else:
            self._values.pop(key, None)
            self._loading.pop(key, None)

    def forget_where(self, matches: Callable[[V], bool]) -> None:
        """Drop every value `matches` says yes to (and every read under way: what those will
        find is not known yet)."""
        self._forgets += 1
        self._loading.clear()
        for key, (value, _) in list(self._values.items()):
            if matches(value):
                del self._values[key]
