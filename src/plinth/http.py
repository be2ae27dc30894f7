"""FastAPI glue every layer's router shares: the composed services, seen through a port.

`server/app.py` puts the composition root on `app.state.platform`. A router never imports it:
it declares a Protocol of what its routes use and asks for the root as that Protocol
(`Annotated[MyPort, Depends(composed)]`). `server/app.py` checks, for mypy, that the real
root satisfies every router's port, so a missing service is a type error, not a 500.
"""

from __future__ import annotations

from typing import cast

from fastapi import Request
from fastapi.responses import JSONResponse

from plinth.errors import PlinthError

PROBLEM = "application/problem+json"


async def composed(request: Request) -> object:
    """The composition root this request's app was built around (typed by the caller's port).

    async: FastAPI runs a plain function dependency on a worker thread, a hop per request."""
    return cast(object, request.app.state.platform)


def problem_response(error: PlinthError, request: Request | None = None) -> JSONResponse:
    """An error as `application/problem+json` (RFC 9457): the one rendering of every fault."""
    body = error.problem()
    if request is not None:
        body.setdefault("instance", request.url.path)
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    return JSONResponse(
        body, status_code=error.status, media_type=PROBLEM, headers=error.headers or None
    )
