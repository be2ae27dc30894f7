"""A small Yjs client (pycrdt + websockets) speaking y-protocols, for tests and the bench."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import websockets
from pycrdt import Doc, Map

from plinth.designer import protocol as p


class YClient:
    """One editor: a local Doc kept in sync with a server room."""

    def __init__(self, url: str, token: str, *, client_id: int | None = None) -> None:
        self.url = url
        self.token = token
        self.doc = Doc(client_id=client_id) if client_id else Doc()
        self.synced = asyncio.Event()
        self.awareness: dict[int, Any] = {}
        self.closed: tuple[int, str] | None = None
        self.received = asyncio.Event()
        # acknowledgements: empty sync step 2 messages, each saying all sent so far is logged
        self.acks = 0
        self._ws: Any = None
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self._remote = False

    async def __aenter__(self) -> YClient:
        self._ws = await websockets.connect(
            self.url, subprotocols=["bearer", self.token], max_size=None
        )
        self._sub = self.doc.observe(self._local_change)
        self._task = asyncio.create_task(self._read())
        await self._ws.send(p.sync_message(p.STEP1, self.doc.get_state()))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def _local_change(self, event: Any) -> None:
        if self._remote or self._ws is None:
            return
        asyncio.get_running_loop().create_task(
            self._safe_send(p.sync_message(p.UPDATE, event.update))
        )

    async def _safe_send(self, data: bytes) -> None:
        with contextlib.suppress(Exception):
            await self._ws.send(data)

    async def send_raw(self, data: bytes) -> None:
        await self._ws.send(data)

    async def set_presence(self, state: dict[str, Any], clock: int = 1) -> None:
        entry = p.PresenceEntry(self.doc.client_id, clock, state)
        await self._ws.send(p.awareness_message(p.encode_awareness([entry])))

    async def _read(self) -> None:
        try:
            async for data in self._ws:
                msg = p.parse(data)
                if msg.type == p.AWARENESS:
                    for e in p.parse_awareness(msg.payload):
                        self.awareness[e.client_id] = e.state
                elif msg.kind == p.STEP1:
                    await self._ws.send(p.sync_message(p.STEP2, self.doc.get_update(msg.payload)))
                else:
                    self._remote = True
                    try:
                        self.doc.apply_update(msg.payload)
                    finally:
                        self._remote = False
                    if msg.kind == p.STEP2:
                        self.synced.set()
                        if msg.payload == p.EMPTY_UPDATE:
                            self.acks += 1
                self.received.set()
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None:
                self.closed = (exc.rcvd.code, exc.rcvd.reason)
        if self.closed is None and self._ws.close_code is not None:
            self.closed = (self._ws.close_code, self._ws.close_reason or "")

    def entities(self) -> dict[str, Any]:
        return self.doc.get("entities", type=Map).to_py() or {}

    def diagnostics(self) -> list[dict[str, Any]] | None:
        for state in self.awareness.values():
            if isinstance(state, dict) and state.get("server"):
                return list(state.get("diagnostics") or [])
        return None


async def eventually(check: Any, within: float = 5.0) -> None:
    """Wait until `check()` is truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in {within}s")
        await asyncio.sleep(0.02)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
