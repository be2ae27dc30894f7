"""The Yjs sync and awareness wire format (y-protocols), parsed strictly.

We own this rather than reuse a stock server so that every message is checked before it
touches a room (size, role, shape) and so that awareness identity can be stamped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pycrdt import Decoder, write_var_uint

SYNC = 0
AWARENESS = 1
STEP1 = 0
STEP2 = 1
UPDATE = 2
EMPTY_UPDATE = b"\x00\x00"


class ProtocolError(ValueError):
    """A message that does not follow the y-protocols format."""


def _varbytes(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


def sync_message(kind: int, payload: bytes) -> bytes:
    """A SYNC message (step 1 carries a state vector, step 2 and update carry an update)."""
    return bytes([SYNC]) + write_var_uint(kind) + _varbytes(payload)


def awareness_message(payload: bytes) -> bytes:
    """An AWARENESS message around an encoded awareness update."""
    return bytes([AWARENESS]) + _varbytes(payload)


@dataclass
class Message:
    type: int
    kind: int  # sync sub-type; 0 for awareness
    payload: bytes


def parse(data: bytes) -> Message:
    """Decode one message or raise ProtocolError."""
    try:
        dec = Decoder(data)
        mtype = dec.read_var_uint()
        if mtype == SYNC:
            kind = dec.read_var_uint()
            payload = dec.read_message()
            if kind not in (STEP1, STEP2, UPDATE) or payload is None:
                raise ProtocolError("unknown sync message")
            return Message(SYNC, kind, payload)
        if mtype == AWARENESS:
            payload = dec.read_message()
            if payload is None:
                raise ProtocolError("empty awareness message")
            return Message(AWARENESS, 0, payload)
    except (IndexError, RuntimeError, UnicodeDecodeError) as exc:
        raise ProtocolError(str(exc)) from exc
    raise ProtocolError(f"unknown message type {mtype}")


@dataclass
class PresenceEntry:
    client_id: int
    clock: int
    state: dict[str, Any] | None  # None: the client left


def parse_awareness(payload: bytes) -> list[PresenceEntry]:
    """Decode an awareness update into entries."""
    try:
        dec = Decoder(payload)
        count = dec.read_var_uint()
        if count > 1000:
            raise ProtocolError("too many awareness entries")
        entries = []
        for _ in range(count):
            client_id = dec.read_var_uint()
            clock = dec.read_var_uint()
            state = json.loads(dec.read_var_string())
            if state is not None and not isinstance(state, dict):
                raise ProtocolError("an awareness state is an object")
            entries.append(PresenceEntry(client_id, clock, state))
        return entries
    except (IndexError, RuntimeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(str(exc)) from exc


def encode_awareness(entries: list[PresenceEntry]) -> bytes:
    """Encode entries as an awareness update."""
    out = bytearray(write_var_uint(len(entries)))
    for e in entries:
        out += write_var_uint(e.client_id) + write_var_uint(e.clock)
        out += _varbytes(json.dumps(e.state, separators=(",", ":")).encode())
    return bytes(out)
