"""The one error hierarchy: every error a user can cause, with a stable code and a status.

Errors are raised once, where the fault is known, and rendered once, by the server, as
`application/problem+json` (RFC 9457). A message says what to do; it never carries a secret
or a stack trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Fault:
    """One problem at one place: `path` is dotted (`entities.claim.fields.amount.min`)."""

    path: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "code": self.code}


class PlinthError(Exception):
    """Base of every error a user can cause. Subclasses set `code` and `status`."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request failed"

    def __init__(
        self,
        detail: str,
        *,
        path: str | None = None,
        faults: Iterable[Fault] = (),
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.path = path
        self.faults = list(faults)
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 body for this error."""
        body: dict[str, Any] = {
            "type": f"https://plinth.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if self.path is not None:
            body["path"] = self.path
        if self.faults:
            body["errors"] = [f.as_dict() for f in self.faults]
        body.update(self.extra)
        return body


class ValidationFailed(PlinthError):
    code = "validation_failed"
    status = 422
    title = "Validation failed"

    @classmethod
    def of(cls, faults: Iterable[Fault], what: str = "input") -> ValidationFailed:
        faults = list(faults)
        first = faults[0] if faults else None
        n = len(faults)
        detail = f"The {what} has {n} error{'s' if n != 1 else ''}"
        if first is not None:
            detail += f"; first at {first.path or '(root)'}: {first.message}"
        return cls(detail, path=first.path if first else None, faults=faults)


class BadRequest(PlinthError):
    code = "bad_request"
    status = 400
    title = "Bad request"


class NotFound(PlinthError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(PlinthError):
    code = "conflict"
    status = 409
    title = "Conflict"


class PreconditionFailed(PlinthError):
    code = "precondition_failed"
    status = 412
    title = "Precondition failed"


class PayloadTooLarge(PlinthError):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class Unauthenticated(PlinthError):
    code = "unauthenticated"
    status = 401
    title = "Authentication required"

    def __init__(self, detail: str = "A valid bearer token is required", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        kw.setdefault("path", "Authorization")  # the credential is what is at fault
        super().__init__(detail, **kw)


class Forbidden(PlinthError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class RateLimited(PlinthError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"


class PublishRefused(PlinthError):
    """A publish step refused the draft (destructive change, compliance, policy …)."""

    code = "publish_refused"
    status = 409
    title = "Publish refused"


class Unavailable(PlinthError):
    code = "unavailable"
    status = 503
    title = "Service unavailable"


@dataclass
class FaultList:
    """Collects faults while checking something, then raises them all at once."""

    faults: list[Fault] = field(default_factory=list)

    def add(self, path: str, message: str, code: str = "invalid") -> None:
        self.faults.append(Fault(path, message, code))

    def __bool__(self) -> bool:
        return bool(self.faults)

    def raise_if_any(self, what: str = "input") -> None:
        if self.faults:
            raise ValidationFailed.of(self.faults, what)
