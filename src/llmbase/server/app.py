"""The FastAPI app: error format, body limit, authentication, versioned routers."""

from __future__ import annotations

import importlib
import logging

from fastapi import FastAPI

from .. import __version__
from ..client import LLMBase
from .auth import _KeyCache
from .body_limit import BodyLimit
from .errors import install_error_handlers

__all__ = ["ROUTERS", "create_app"]

_log = logging.getLogger("llmbase.server")

#: Router modules (each exposes `router`), mounted in this order. Each resource has its own.
ROUTERS = [
    "health",
    "ingest",
    "conversations",
    "feedback",
    "users",
    "documents",
    "reports",
    "runs",
    "cache",
    "limits",
    "admin",
    "otlp",
    "dashboard",
]

DEFAULT_MAX_BODY = 10 * 1024 * 1024


def create_app(
    client: LLMBase,
    *,
    local_admin: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    key_cache_ttl: float = 10.0,
) -> FastAPI:
    """The app serving `client`'s database. `local_admin`: requests from loopback without a
    key act as the root client (`llmbase up` on localhost only)."""
    app = FastAPI(
        title="llmbase",
        version=__version__,
        description="The PostgreSQL backend for LLM applications: request log, conversations, "
        "documents, reports, cache, limits, audit. Authenticate with an API key "
        "(`Authorization: Bearer llmb_...`); the tenant comes from the key.",
        openapi_url="/v1/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.client = client
    app.state.local_admin = local_admin
    app.state.key_cache = _KeyCache(ttl=key_cache_ttl)
    install_error_handlers(app)
    for name in ROUTERS:
        module = importlib.import_module(f"{__package__}.routes.{name}")
        app.include_router(module.router)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app
