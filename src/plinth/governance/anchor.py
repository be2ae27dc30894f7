"""Anchors: where the ledger's newest checkpoints are copied, outside its database.

Someone who can write the database can cut events from a chain together with the checkpoints
that name them, leaving a shorter chain that verifies. A copy of the checkpoints they cannot
write (a file on another disk or host, a URL of another service) makes that visible: `verify`
checks every anchored checkpoint against the chain.

Two kinds, chosen by the target's form (`PLINTH_AUDIT_ANCHOR`):

- a path (or `file://…`): JSON Lines appended, one `{"checkpoint": …, "public_key": …}` per
  checkpoint; the public key lets anyone check a signature without a secret;
- an `http(s)://` URL: `POST` `{"checkpoints": [...], "public_keys": {key_id: hex}}`, and
  `GET ?tenant_key=…` answering `{"checkpoints": [...]}` with what it kept for that chain.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import httpx

from plinth.governance.chain import Checkpoint


class AnchorUnreadable(Exception):
    """The anchor could not be read or holds something that is not a checkpoint."""


class Anchor(Protocol):
    async def publish(self, checkpoints: list[Checkpoint], public_keys: dict[str, str]) -> None:
        """Keep these checkpoints (append; never replace what is there)."""
        ...

    async def read(self, tenant_key: str) -> list[Checkpoint]:
        """Every checkpoint kept for one chain."""
        ...


class FileAnchor:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"file {self.path}"

    async def publish(self, checkpoints: list[Checkpoint], public_keys: dict[str, str]) -> None:
        lines = "".join(
            json.dumps(
                {"checkpoint": cp.as_dict(), "public_key": public_keys.get(cp.key_id)},
                separators=(",", ":"),
            )
            + "\n"
            for cp in checkpoints
        )
        await asyncio.to_thread(self._append, lines)

    def _append(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
            f.flush()

    async def read(self, tenant_key: str) -> list[Checkpoint]:
        try:
            text = await asyncio.to_thread(self.path.read_text, "utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise AnchorUnreadable(f"{self.path}: {exc.strerror}") from exc
        found = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                cp = Checkpoint.of(json.loads(line).get("checkpoint"))
            except (ValueError, AttributeError) as exc:
                raise AnchorUnreadable(f"{self.path} line {i}: {exc}") from exc
            if cp.tenant_key == tenant_key:
                found.append(cp)
        return found


class UrlAnchor:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"url {self.url}"

    async def publish(self, checkpoints: list[Checkpoint], public_keys: dict[str, str]) -> None:
        body = {"checkpoints": [cp.as_dict() for cp in checkpoints], "public_keys": public_keys}
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            r = await client.post(self.url, json=body)
            r.raise_for_status()

    async def read(self, tenant_key: str) -> list[Checkpoint]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                r = await client.get(self.url, params={"tenant_key": tenant_key})
                r.raise_for_status()
                raw = r.json().get("checkpoints", [])
            return [Checkpoint.of(c) for c in raw if c.get("tenant_key") == tenant_key]
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise AnchorUnreadable(f"{self.url}: {exc}") from exc


def anchor_of(target: str) -> Anchor:
    """The anchor a setting names: an http(s) URL, else a file path (`file://` optional)."""
    parsed = urlparse(target)
    if parsed.scheme in ("http", "https"):
        return UrlAnchor(target)
    if parsed.scheme == "file":
        return FileAnchor(Path(parsed.path))
    return FileAnchor(Path(target))
