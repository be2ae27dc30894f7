"""Envelope encryption primitives shared by the secrets vault and field encryption.

One scheme for the platform: AES-256-GCM with a random 96-bit nonce stored in front of the
ciphertext, and associated data binding a ciphertext to where it belongs (a tenant, a secret's
name, a record's field), so a blob copied elsewhere fails to open. Keys are wrapped (sealed)
by the key above them: the master key wraps tenant keys, a tenant key wraps subject keys.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32

__all__ = ["KEY_BYTES", "InvalidTag", "new_key", "open_sealed", "seal"]


def new_key() -> bytes:
    """A fresh random AES-256 key."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """nonce || AES-GCM(plaintext), bound to `aad`."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """The plaintext of `seal(key, plaintext, aad)`; InvalidTag if key, blob or aad differ."""
    return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
