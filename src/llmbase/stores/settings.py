"""Tenant settings: read, replace, patch, with optimistic concurrency on `version`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .._sanitize import clean_json, json_object
from ..errors import ConflictError
from ..settings import TenantSettings, validate_settings
from ._common import Ctx
from ._plan import Plan, Query

__all__ = ["SettingsRecord"]


@dataclass(frozen=True)
class SettingsRecord:
    tenant_id: UUID
    settings: TenantSettings
    version: int
    updated_at: datetime | None


def _deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict) and k != "custom":
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def get(ctx: Ctx) -> Plan[SettingsRecord]:
    """The tenant's settings (defaults when never set)."""
    tid = ctx.scope.require_tenant()
    row = yield Query(
        "SELECT settings, version, updated_at FROM llmbase.tenant_settings",
        fetch="optional",
        tuples=True,
    )
    if row is None:
        return SettingsRecord(tid, TenantSettings(), 0, None)
    return SettingsRecord(tid, validate_settings(row[0]), row[1], row[2])


def put(
    ctx: Ctx, settings: Mapping[str, Any], *, expected_version: int | None = None
) -> Plan[SettingsRecord]:
    """Replace the settings document. With `expected_version`, refuse if someone changed it."""
    tid = ctx.scope.require_tenant()
    model = validate_settings(clean_json(dict(settings)) if isinstance(settings, Mapping) else settings)
    doc = json_object(
        model.model_dump(exclude_defaults=True),
        field="settings",
        max_bytes=ctx.settings.max_metadata_bytes,
    )
    row = yield Query(
        "INSERT INTO llmbase.tenant_settings AS s (settings) VALUES (%s::jsonb)"
        " ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings, version = s.version + 1"
        " WHERE %s::int IS NULL OR s.version = %s::int"
        " RETURNING version, updated_at",
        (doc, expected_version, expected_version),
        fetch="optional",
        tuples=True,
    )
    if row is None:
        raise ConflictError(f"settings changed since version {expected_version}; read them again")
    return SettingsRecord(tid, model, row[0], row[1])


def patch(ctx: Ctx, changes: Mapping[str, Any]) -> Plan[SettingsRecord]:
    """Merge `changes` into the current settings (nested sections merge; `custom` replaces)."""
    current = yield from get(ctx)
    merged = _deep_merge(current.settings.model_dump(exclude_defaults=True), changes)
    return (yield from put(ctx, merged, expected_version=current.version))
