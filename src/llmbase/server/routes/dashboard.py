"""The dashboard (pages, static assets and their JSON under /ui): see server/dashboard/."""

from __future__ import annotations

from ..dashboard import router

__all__ = ["router"]
