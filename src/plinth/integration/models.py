"""Types and errors of the integration layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from plinth.errors import PlinthError


class GatewayTimeout(PlinthError):
    code = "gateway_timeout"
    status = 504
    title = "Gateway timeout"


class ConnectorFailed(PlinthError):
    """The remote side of a connector failed or answered something we cannot accept."""

    code = "connector_failed"
    status = 502
    title = "Connector call failed"


class ConnectorTimeout(PlinthError):
    code = "connector_timeout"
    status = 504
    title = "Connector call timed out"


class CircuitOpen(PlinthError):
    code = "circuit_open"
    status = 503
    title = "Connector temporarily disabled"


class QuotaExceeded(PlinthError):
    code = "quota_exceeded"
    status = 429
    title = "Quota exceeded"


class CorsRefused(PlinthError):
    code = "cors_refused"
    status = 403
    title = "Origin refused"


class SignatureRefused(PlinthError):
    code = "signature_refused"
    status = 401
    title = "Webhook signature refused"


@dataclass(frozen=True)
class SecretInfo:
    """What the API may say about a secret: everything except its value."""

    name: str
    key_version: int
    created_at: datetime
    updated_at: datetime
    updated_by: str | None

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key_version": self.key_version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class Delivery:
    id: str
    tenant_id: str
    app: str
    connector: str
    topic: str
    url: str
    payload: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    run_at: float | None = None  # when a pending/retrying delivery is next due
    locked_until: float | None = None
    lease: str | None = None

    FIELDS: ClassVar[tuple[str, ...]] = (
        "id",
        "app",
        "connector",
        "topic",
        "url",
        "status",
        "attempts",
        "last_status",
        "last_error",
    )

    def public(self) -> dict[str, Any]:
        body = {k: getattr(self, k) for k in self.FIELDS}
        body["created_at"] = self.created_at.isoformat()
        body["updated_at"] = self.updated_at.isoformat()
        body["next_attempt_at"] = (
            datetime.fromtimestamp(self.run_at, UTC).isoformat()
            if self.run_at is not None and self.status in ("pending", "retrying")
            else None
        )
        return body


class EgressRefused(PlinthError):
    """An outbound call would reach an address the SSRF guard forbids (or an ungranted host)."""

    code = "egress_refused"
    status = 403
    title = "Outbound call refused"
