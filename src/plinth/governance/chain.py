"""The ledger's keys and seals: pure functions over bytes, no I/O.

Each tenant's events form a chain: every event stores a MAC over the previous event's MAC and
its own canonical content, keyed by a secret derived from the master key (HMAC-SHA256). The
key never touches the database, so someone who can write the database but does not hold the
master key cannot compute the MAC of an edited, re-hashed or forged event.

A checkpoint (tenant, count, head) is signed with Ed25519, its private key derived from the
same root: the public key lets an outside party (an anchor) check a checkpoint without holding
any secret. Checkpoints catch what a chain alone cannot: events cut from its end.

Ledgers written before the keyed chain (plain SHA-256 links, `key_id` empty) stay verifiable as
they were; the first keyed event links to their last hash, so from the upgrade on they cannot
be rewritten either.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64


def iso(at: datetime) -> str:
    return at.isoformat() if at.tzinfo else at.isoformat() + "+00:00"


# Built once (`json.dumps` with arguments builds one per call); the same text as
# `json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)`.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False
)


def canonical(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode()


@dataclass(frozen=True)
class LedgerKey:
    """One generation of ledger keys (a master key rotation starts a new one)."""

    root: bytes

    @classmethod
    def from_master(cls, master: bytes) -> LedgerKey:
        return cls(hmac.new(master, b"plinth-derive:audit-ledger", hashlib.sha256).digest())

    @property
    def id(self) -> str:
        """Names the key in each event and checkpoint without revealing it."""
        return hashlib.sha256(b"plinth-audit-key-id:" + self.root).hexdigest()[:16]

    @functools.cached_property
    def _mac_key(self) -> bytes:
        return hmac.new(self.root, b"chain", hashlib.sha256).digest()

    @functools.cached_property
    def _signer(self) -> Ed25519PrivateKey:
        seed = hmac.new(self.root, b"checkpoint", hashlib.sha256).digest()
        return Ed25519PrivateKey.from_private_bytes(seed)

    @property
    def public_key(self) -> str:
        """The checkpoint verification key, hex (what an anchor publishes beside checkpoints)."""
        raw = self._signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return raw.hex()

    def mac(self, prev: str, body: bytes) -> str:
        return hmac.new(self._mac_key, prev.encode() + body, hashlib.sha256).hexdigest()

    def sign(self, checkpoint: Checkpoint) -> str:
        return self._signer.sign(checkpoint.message()).hex()


def event_body(
    key_id: str | None,
    tenant_key: str,
    n: int,
    at: datetime,
    actor: str | None,
    action: str,
    resource: str | None,
    outcome: str,
    data: Any,
) -> bytes:
    """The canonical content of an event (the key's id is part of it: it cannot be swapped)."""
    fields: list[Any] = [tenant_key, n, iso(at), actor, action, resource, outcome, data]
    return canonical(fields if key_id is None else [key_id, *fields])


def legacy_hash(prev: str, body: bytes) -> str:
    """The link of events written before the keyed chain: SHA-256, no key."""
    return hashlib.sha256(prev.encode() + body).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: `tenant_key`'s chain had `n` events, the last with MAC `head`."""

    tenant_key: str
    n: int
    head: str
    at: str
    key_id: str
    signature: str = ""

    def message(self) -> bytes:
        return b"plinth-audit-checkpoint:" + canonical(
            [self.tenant_key, self.n, self.head, self.at, self.key_id]
        )

    def signed_by(self, public_key_hex: str) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(
                bytes.fromhex(self.signature), self.message()
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_key": self.tenant_key,
            "n": self.n,
            "head": self.head,
            "at": self.at,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def of(cls, raw: Any) -> Checkpoint:
        """From its JSON form; ValueError when a member is missing or of the wrong type."""
        if not isinstance(raw, dict):
            raise ValueError("a checkpoint is a JSON object")
        try:
            found = cls(
                str(raw["tenant_key"]),
                int(raw["n"]),
                str(raw["head"]),
                str(raw["at"]),
                str(raw["key_id"]),
                str(raw["signature"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a checkpoint lacks {exc}") from exc
        return found
