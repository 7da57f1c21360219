"""Admin endpoints of the key's tenant (scope `admin`): `GET /v1/audit` (the audit log),
`GET|PUT|PATCH /v1/settings` (typed tenant settings), `GET|POST /v1/keys` and
`DELETE /v1/keys/{id}` (API keys: list, create (the secret is shown once), revoke)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from ...audit import AuditEntry
from ...stores.keys import ApiKey, CreatedKey
from ...stores.settings import SettingsRecord
from ..auth import Principal, require
from ..schemas import KeyIn, Page, SettingsPut
from ._common import ERRORS, Cursor, Limit, page, paginate

router = APIRouter(prefix="/v1", tags=["admin"], responses=ERRORS)

_Text = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get("/audit", response_model=Page[AuditEntry])
def audit(
    actor: _Text = None,
    action: _Text = None,
    object_type: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    object_id: _Text = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    principal: Principal = require("admin"),
) -> dict[str, Any]:
    """Audit entries newest first; `action=api_key.*` matches a prefix."""
    return page(
        principal.client.audit.list(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    )


@router.get("/settings", response_model=SettingsRecord)
def get_settings(principal: Principal = require("admin")) -> SettingsRecord:
    return principal.client.settings.get()


@router.put("/settings", response_model=SettingsRecord)
def put_settings(body: SettingsPut, principal: Principal = require("admin")) -> SettingsRecord:
    """Replace the settings; `expected_version` turns a concurrent edit into 409."""
    return principal.client.settings.put(body.settings, expected_version=body.expected_version)


@router.patch("/settings", response_model=SettingsRecord)
def patch_settings(body: dict[str, Any], principal: Principal = require("admin")) -> SettingsRecord:
    """Merge changes into the settings (nested sections merge)."""
    return principal.client.settings.patch(body)


@router.get("/keys", response_model=Page[ApiKey])
def list_keys(
    include_revoked: bool = False,
    limit: Limit = 100,
    cursor: Cursor = None,
    principal: Principal = require("admin"),
) -> dict[str, Any]:
    return paginate(principal.client.keys.list(include_revoked=include_revoked), limit, cursor)


@router.post("/keys", response_model=CreatedKey, status_code=201)
def create_key(body: KeyIn, principal: Principal = require("admin")) -> CreatedKey:
    """A new key of this tenant; `secret` is shown only in this response."""
    return principal.client.keys.create(
        body.name, scopes=list(body.scopes), user_id=body.user_id, expires_at=body.expires_at
    )


@router.delete("/keys/{key_id}", response_model=ApiKey)
def revoke_key(key_id: UUID, principal: Principal = require("admin")) -> ApiKey:
    """Revoke a key (it stops working within the server's key cache TTL, 10 s)."""
    return principal.client.keys.revoke(key_id)
