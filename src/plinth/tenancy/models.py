"""Tenant types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Tenant:
    id: str
    slug: str
    name: str
    region: str
    created_at: datetime
    settings: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "region": self.region,
            "created_at": self.created_at.isoformat(),
            "settings": self.settings,
        }
