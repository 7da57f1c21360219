"""`GET /v1/health`: liveness and the schema revision (no key needed); `GET /v1/whoami`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ... import migrate
from ..auth import Principal, require

router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """The server is up and its database answers."""
    url = request.app.state.client.database.url
    st = migrate.status(url)
    return {"status": "ok", "schema": st.current, "up_to_date": st.up_to_date}


@router.get("/whoami")
def whoami(principal: Principal = require("read")) -> dict[str, Any]:
    """The tenant, user and scopes of the presented key."""
    return {
        "tenant_id": principal.tenant_id,
        "user_id": principal.user_id,
        "key_id": principal.key_id,
        "scopes": sorted(principal.scopes),
        "local_admin": principal.local_admin,
    }
