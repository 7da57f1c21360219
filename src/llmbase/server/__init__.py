"""The HTTP API and the dashboard: `create_app(client)` builds the FastAPI app that
`llmbase up` serves (docs/http.md). Thin: every endpoint parses, authenticates and calls the
SDK; the tenant comes only from the API key."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
