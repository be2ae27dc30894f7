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


# -- update screening ---------------------------------------------------------------------------
# pycrdt (yrs) decodes nested `Any` values recursively: an update of ~60 KB nesting arrays
# 30 000 deep overflows the native stack and kills the whole process (measured with pycrdt
# 0.14). So every client update is walked here first, iteratively, and refused if a value nests
# deeper than any draft needs. The walk follows the Yjs v1 update encoding; anything it cannot
# read is refused too, so nothing reaches the decoder unscreened.

MAX_NESTING = 64
_ANY_FIXED = {127: 0, 126: 0, 121: 0, 120: 0, 124: 4, 123: 8, 122: 8}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ProtocolError("truncated update")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uint(self) -> int:
        value, shift = 0, 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
            if shift > 70:
                raise ProtocolError("a number in the update is too long")

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError("truncated update")
        self.pos += n

    def buf(self) -> None:
        self.skip(self.uint())

    def signed(self) -> None:
        b = self.byte()
        while b >= 0x80:
            b = self.byte()

    def any(self) -> None:
        """Skip one `Any` value, without recursion, refusing nesting deeper than MAX_NESTING."""
        stack = [[1, False]]  # per open level: [values left, is it an object (keyed)?]
        while stack:
            top = stack[-1]
            if top[0] == 0:
                stack.pop()
                continue
            top[0] -= 1
            if top[1]:
                self.buf()  # an object entry's key
            tag = self.byte()
            if tag in _ANY_FIXED:
                self.skip(_ANY_FIXED[tag])
            elif tag == 125:
                self.signed()
            elif tag in (119, 116):  # string, bytes
                self.buf()
            elif tag in (118, 117):  # object, array
                if len(stack) >= MAX_NESTING:
                    raise ProtocolError(
                        f"a value in the update nests {MAX_NESTING} levels deep or more"
                    )
                stack.append([self.uint(), tag == 118])
            else:
                raise ProtocolError(f"unknown value type {tag} in the update")


def screen_update(update: bytes) -> None:
    """Raise ProtocolError unless `update` (Yjs v1) is readable and nests values shallowly."""
    r = _Reader(update)
    for _ in range(r.uint()):  # groups of structs, one per client
        structs = r.uint()
        r.uint()  # client
        r.uint()  # clock
        for _ in range(structs):
            info = r.byte()
            ref = info & 0x1F
            if ref in (0, 10):  # GC, skip
                r.uint()
                continue
            if info & 0x80:
                r.uint(), r.uint()  # origin
            if info & 0x40:
                r.uint(), r.uint()  # right origin
            if not info & 0xC0:
                if r.uint() == 1:
                    r.buf()  # parent: a root type's name
                else:
                    r.uint(), r.uint()  # parent: an item id
                if info & 0x20:
                    r.buf()  # key in a map
            if ref == 1:  # deleted
                r.uint()
            elif ref == 2:  # JSON strings
                for _ in range(r.uint()):
                    r.buf()
            elif ref in (3, 4, 5):  # binary, string, embed (JSON text)
                r.buf()
            elif ref == 6:  # format: key, JSON text
                r.buf()
                r.buf()
            elif ref == 7:  # a nested type
                type_ref = r.uint()
                if type_ref in (3, 5):  # XmlElement name, XmlHook key
                    r.buf()
                elif type_ref not in (0, 1, 2, 4, 6):
                    raise ProtocolError(f"unsupported shared type {type_ref} in the update")
            elif ref == 8:  # Any values
                for _ in range(r.uint()):
                    r.any()
            elif ref == 9:  # a sub-document: guid, options
                r.buf()
                r.any()
            else:
                raise ProtocolError(f"unsupported content {ref} in the update")
