"""The dashboard served by the app: pages at `/` and `/ui/<page>`, JSON for them under
`/ui/api/` (docs/dashboard.md). Log in with an API key (read scope; kept in the browser's
sessionStorage and sent as a Bearer token) or, with `llmbase up` on localhost, in local
admin mode without a key."""

from __future__ import annotations

from fastapi import APIRouter

from . import api, pages

__all__ = ["router"]

router = APIRouter()
router.include_router(api.router)
router.include_router(pages.router)
