"""The OAuth2 access-token cache of `http` connectors (client credentials).

Embedded, tokens stay in process memory. Scaled out (`PLINTH_REDIS_URL`), nodes share them in
Redis, so N nodes fetch one token rather than N: each is stored encrypted (AES-GCM under a key
derived from the master key, bound to its cache key) with a TTL a little shorter than the
token's own lifetime. Tokens are never logged; a 401 drops the cached one everywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis.exceptions import RedisError

log = logging.getLogger("plinth.integration.tokens")

EARLY_SECONDS = 30.0  # renew a little early so a token never expires in flight


def cache_key(connector_key: str, token_url: str, client_id: str, scope: str | None) -> str:
    """One cache entry per connector and credentials (a changed client gets a new token)."""
    digest = hashlib.sha256(f"{token_url}\n{client_id}\n{scope or ''}".encode()).hexdigest()
    return f"{connector_key}:{digest[:16]}"


def lifetime(expires_in: Any) -> float:
    """Seconds to keep a token that the endpoint says lives `expires_in` seconds."""
    try:
        seconds = float(expires_in or 300)
    except (TypeError, ValueError):
        seconds = 300.0
    return max(1.0, seconds - EARLY_SECONDS)


class TokenCache:
    """Access tokens by cache key: process memory, or Redis when `redis` is given."""

    def __init__(self, redis: Any = None, master: Any = None) -> None:
        self.redis = redis
        self._master = master  # a callable giving the master key (loaded lazily)
        self._aead: AESGCM | None = None
        self._local: dict[str, tuple[str, float]] = {}

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"plinth oauth token cache"
            ).derive(self._master())
            self._aead = AESGCM(key)
        return self._aead

    async def get(self, key: str) -> str | None:
        if self.redis is None:
            found = self._local.get(key)
            return found[0] if found and found[1] > time.monotonic() else None
        try:
            sealed = await self.redis.get(f"plinth:oauth:{key}")
        except RedisError:
            log.warning("OAuth2 token cache unavailable (Redis); fetching a token")
            return None
        if not sealed:
            return None
        try:
            return self._cipher().decrypt(sealed[:12], sealed[12:], key.encode()).decode()
        except (InvalidTag, ValueError):
            return None  # another master key sealed it: fetch a fresh token

    async def put(self, key: str, token: str, seconds: float) -> None:
        if self.redis is None:
            self._local[key] = (token, time.monotonic() + seconds)
            return
        nonce = os.urandom(12)
        sealed = nonce + self._cipher().encrypt(nonce, token.encode(), key.encode())
        try:
            await self.redis.set(f"plinth:oauth:{key}", sealed, px=int(seconds * 1000))
        except RedisError:
            log.warning("OAuth2 token cache unavailable (Redis); token not shared")

    async def drop(self, key: str) -> None:
        if self.redis is None:
            self._local.pop(key, None)
            return
        try:
            await self.redis.delete(f"plinth:oauth:{key}")
        except RedisError:
            log.warning("OAuth2 token cache unavailable (Redis); token not dropped")
