"""HTTP routes of pages: the component catalogue (for the designer) and the portal."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from plinth.compiler.targets import webcomponents as wc
from plinth.errors import Unavailable
from plinth.governance.http import PrincipalDep
from plinth.pages import components
from plinth.pages.portal import CSS
from plinth.pages.portal import router as portal_router
from plinth.pages.session import router as session_router

router = APIRouter()
router.include_router(session_router)  # before the portal's catch-all shell routes
router.include_router(portal_router)


@router.get("/api/pages/components", tags=["pages"])
async def component_catalogue(principal: PrincipalDep) -> dict[str, Any]:
    """Every built-in component kind with its props JSON Schema, container flag and events;
    and the portal's runtime and stylesheet, which the designer's canvas renders pages with."""
    try:
        runtime: str | None = wc.runtime_url()
    except Unavailable:
        runtime = None  # not built: the canvas falls back to outlines
    return {
        "kinds": components.catalogue(),
        "plugin_kind_pattern": components.PLUGIN_KIND.pattern,
        "runtime": runtime,
        "stylesheet": CSS,
    }
