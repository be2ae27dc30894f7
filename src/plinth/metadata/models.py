"""Metadata types: apps, drafts and versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class App:
    id: str
    tenant_id: str
    slug: str
    name: str
    description: str
    active_version: int | None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "description": self.description,
            "active_version": self.active_version,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Draft:
    app_id: str
    definition: dict[str, Any]
    revision: int
    updated_at: datetime
    updated_by: str | None

    @property
    def etag(self) -> str:
        return f'"r{self.revision}"'


@dataclass(frozen=True)
class Version:
    app_id: str
    number: int
    hash: str
    definition: dict[str, Any]
    message: str
    created_by: str | None
    created_at: datetime

    def summary(self, active: int | None = None) -> dict[str, Any]:
        return {
            "number": self.number,
            "hash": self.hash,
            "message": self.message,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "active": self.number == active,
        }
