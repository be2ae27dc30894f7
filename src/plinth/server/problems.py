"""Rendering errors as `application/problem+json` (RFC 9457), once, for every layer."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from plinth.errors import Fault, PlinthError, ValidationFailed
from plinth.http import PROBLEM, problem_response
from plinth.jsonschema import join_path

log = logging.getLogger("plinth.server")


def install(app: FastAPI) -> None:
    @app.exception_handler(PlinthError)
    async def _plinth(request: Request, exc: PlinthError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        faults = []
        for err in exc.errors():
            loc: list[Any] = list(err.get("loc", ()))
            if loc and loc[0] in ("body", "query", "path", "header"):
                where = loc[0]
                loc = loc[1:]
            else:
                where = "body"
            path = join_path(where if where != "body" else "", loc)
            faults.append(Fault(path, str(err.get("msg", "invalid")), str(err.get("type"))))
        return problem_response(ValidationFailed.of(faults, "request"), request)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own refusals: no route for the path (404), the method (405), or a body
        # it could not parse (400); each names what was at fault, like every other refusal.
        where = {404: "path", 405: "method"}.get(exc.status_code, "body")
        error = PlinthError(str(exc.detail), path=where)
        body = error.problem() | {
            "status": exc.status_code,
            "code": f"http_{exc.status_code}",
            "title": str(exc.detail),
        }
        return JSONResponse(
            body,
            status_code=exc.status_code,
            media_type=PROBLEM,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        log.exception(
            "unhandled error on %s %s (request %s)", request.method, request.url.path, request_id
        )
        body = {
            "type": "https://plinth.dev/problems/internal",
            "title": "Internal error",
            "status": 500,
            "code": "internal",
            "detail": "Something went wrong on our side; the request id helps us find it",
            "request_id": request_id,
        }
        return JSONResponse(body, status_code=500, media_type=PROBLEM)
