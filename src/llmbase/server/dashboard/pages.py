"""The dashboard's pages and static assets: one HTML shell for `/` and `/ui/<page>` (the
script renders the page named by the path) and the files under `/ui/static/` (the app's
script and style, and the vendored chart library; nothing is fetched from a CDN)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

__all__ = ["PAGES", "router"]

router = APIRouter(include_in_schema=False)

#: page slug -> title (the navigation, in order)
PAGES = {
    "overview": "Overview",
    "requests": "Requests",
    "conversations": "Conversations",
    "runs": "Agent runs",
    "cache": "Cache",
    "budgets": "Budgets",
    "documents": "Documents",
}

_STATIC = Path(str(resources.files(__package__) / "static"))
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
_FILES = {
    p.relative_to(_STATIC).as_posix(): p for p in _STATIC.rglob("*") if p.is_file() and p.suffix in _TYPES
}
_CACHE = "public, max-age=300"


def _shell() -> HTMLResponse:
    html = (_STATIC / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/overview", status_code=307)


@router.get("/ui")
@router.get("/ui/")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/overview", status_code=307)


@router.get("/ui/static/{path:path}")
def static(path: str) -> FileResponse:
    """A file of the dashboard's own (a fixed set: no path from the request reaches the disk)."""
    found = _FILES.get(path)
    if found is None:
        raise HTTPException(404, "no such file")
    return FileResponse(found, media_type=_TYPES[found.suffix], headers={"Cache-Control": _CACHE})


@router.get("/ui/{page}")
def page(page: str) -> HTMLResponse:
    if page not in PAGES:
        raise HTTPException(404, "no such page")
    return _shell()
