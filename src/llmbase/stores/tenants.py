"""Tenants (admin scope) and slug resolution."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from .._ids import uuid7
from .._sanitize import bounded_text, json_object
from ..errors import NotFound, ValidationError
from ._common import Ctx, Page, check_limit, parse_id
from ._plan import Plan, Query

__all__ = ["Tenant"]

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Tenant:
    id: UUID
    slug: str
    name: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


_COLS = sql.SQL("id, slug, name, metadata, created_at, updated_at")


def check_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG.match(slug):
        raise ValidationError("lowercase letters, digits, '-' or '_', 1-63 characters", field="slug")
    return slug


def create(
    ctx: Ctx,
    slug: str,
    *,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    id: UUID | str | None = None,
) -> Plan[Tenant]:
    row = yield Query(
        sql.SQL(
            "INSERT INTO llmbase.tenants (id, slug, name, metadata) VALUES (%s, %s, %s, %s::jsonb) RETURNING {}"
        ).format(_COLS),
        (
            parse_id(id) if id else uuid7(),
            check_slug(slug),
            bounded_text(name or slug, field="name", max_chars=200),
            json_object(metadata, field="metadata", max_bytes=ctx.settings.max_metadata_bytes),
        ),
        fetch="one",
        row=Tenant,
        conflict=f"tenant {slug!r} exists",
    )
    return row  # type: ignore[no-any-return]


def resolve(ctx: Ctx, tenant: UUID | str) -> Plan[UUID]:
    """A tenant's id from its id or slug."""
    if isinstance(tenant, UUID):
        return tenant
    try:
        return UUID(tenant)
    except ValueError:
        pass
    row = yield Query("SELECT llmbase.tenant_id_by_slug(%s)", (check_slug(tenant),), fetch="one", tuples=True)
    if row[0] is None:
        raise NotFound("tenant", tenant)
    return row[0]  # type: ignore[no-any-return]


def get(ctx: Ctx, tenant_id: UUID | str | None = None) -> Plan[Tenant]:
    """The scope's tenant (or, in admin scope, any tenant by id)."""
    tid = parse_id(tenant_id, field="tenant_id") if tenant_id else ctx.scope.require_tenant()
    row = yield Query(
        sql.SQL("SELECT {} FROM llmbase.tenants WHERE id = %s").format(_COLS),
        (tid,),
        fetch="one",
        row=Tenant,
        not_found=NotFound("tenant", tid),
    )
    return row  # type: ignore[no-any-return]


def list_(ctx: Ctx, *, limit: int = 100, after: str | None = None) -> Plan[Page[Tenant]]:
    """Tenants by slug (admin scope sees all; a tenant scope sees itself)."""
    n = check_limit(limit)
    rows: list[Tenant] = yield Query(
        sql.SQL("SELECT {} FROM llmbase.tenants WHERE slug > %s ORDER BY slug LIMIT %s").format(_COLS),
        (after or "", n + 1),
        row=Tenant,
    )
    items = rows[:n]
    return Page(items, items[-1].slug if len(rows) > n else None)


def update(
    ctx: Ctx,
    *,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    tenant_id: UUID | None = None,
) -> Plan[Tenant]:
    tid = tenant_id or ctx.scope.require_tenant()
    row = yield Query(
        sql.SQL(
            "UPDATE llmbase.tenants SET name = coalesce(%s, name), metadata = coalesce(%s::jsonb, metadata)"
            " WHERE id = %s RETURNING {}"
        ).format(_COLS),
        (
            None if name is None else bounded_text(name, field="name", max_chars=200),
            None
            if metadata is None
            else json_object(metadata, field="metadata", max_bytes=ctx.settings.max_metadata_bytes),
            tid,
        ),
        fetch="one",
        row=Tenant,
        not_found=NotFound("tenant", tid),
    )
    return row  # type: ignore[no-any-return]
