"""How a browser keeps a signed-in session, for the portal and the IDE alike.

The refresh token lives only in an `HttpOnly`, `SameSite=Strict` cookie scoped to the session
routes (and `Secure` over HTTPS): page scripts never see it. Every state-changing session
request must carry a header of the client's own, which a cross-site form cannot send (CSRF).
Each client has its own cookie name, path and header, so signing in to one is not signing in
to the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Response

from plinth.errors import Forbidden
from plinth.governance.identity import REFRESH_TTL


def secure(request: Request) -> bool:
    """Whether cookies set for this request must be `Secure` (it came over HTTPS)."""
    return request.url.scheme == "https"


@dataclass(frozen=True)
class SessionCookie:
    name: str  # the refresh cookie's name
    path_template: str  # the session routes' path, with `{tenant}`
    header: str  # the CSRF header, as sent (e.g. "X-Plinth-Portal")
    client: str  # who sends it, for the refusal: "IDE", "portal"

    def path(self, tenant: str) -> str:
        return self.path_template.format(tenant=tenant)

    def set(self, response: Response, request: Request, tenant: str, token: str) -> None:
        response.set_cookie(
            self.name,
            token,
            max_age=int(REFRESH_TTL.total_seconds()),
            path=self.path(tenant),
            httponly=True,
            samesite="strict",
            secure=secure(request),
        )

    def clear(self, response: Response, request: Request, tenant: str) -> None:
        response.delete_cookie(
            self.name,
            path=self.path(tenant),
            httponly=True,
            samesite="strict",
            secure=secure(request),
        )

    def check_csrf(self, request: Request) -> None:
        if request.headers.get(self.header.lower()) != "1":
            raise Forbidden(
                f"{self.client[:1].upper()}{self.client[1:]} session requests must come from "
                f"the {self.client} (missing the {self.header} header)",
                path=f"headers.{self.header.lower()}",
            )
