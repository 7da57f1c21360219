"""Users of a tenant and their profiles (preferences + activity statistics)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import sql

from .._ids import uuid7
from .._sanitize import bounded_text, json_object
from ..errors import NotFound, ValidationError
from ._common import Ctx, Page, check_limit, parse_id
from ._plan import Plan, Query

__all__ = ["Profile", "User"]


@dataclass(frozen=True)
class User:
    id: UUID
    tenant_id: UUID
    external_id: str
    auth_id: str | None
    email: str | None
    display_name: str | None
    metadata: dict[str, Any]
    is_active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Profile:
    user_id: UUID
    tenant_id: UUID
    preferences: dict[str, Any]
    conversation_count: int
    message_count: int
    request_count: int
    total_tokens: int
    total_cost_usd: Decimal
    feedback_count: int
    first_active_at: datetime | None
    last_active_at: datetime | None
    updated_at: datetime


_COLS = sql.SQL(
    "id, tenant_id, external_id, auth_id, email, display_name, metadata, is_active, created_at, updated_at"
)
_PROFILE_COLS = sql.SQL(
    "user_id, tenant_id, preferences, conversation_count, message_count, request_count, total_tokens,"
    " total_cost_usd, feedback_count, first_active_at, last_active_at, updated_at"
)


def _ext(value: str, field: str = "external_id") -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("must be a non-empty string", field=field)
    return bounded_text(value, field=field, max_chars=256)


def _opt(value: str | None, field: str, n: int) -> str | None:
    return None if value is None else bounded_text(value, field=field, max_chars=n)


def _insert(
    ctx: Ctx,
    external_id: str,
    *,
    auth_id: str | None,
    email: str | None,
    display_name: str | None,
    metadata: Mapping[str, Any] | None,
    upsert: bool,
) -> Query:
    # On a race with a concurrent ensure(), the no-op update returns the winner's row.
    conflict = (
        " ON CONFLICT (tenant_id, external_id) DO UPDATE SET external_id = EXCLUDED.external_id"
        if upsert
        else ""
    )
    return Query(
        sql.SQL(
            "INSERT INTO llmbase.users (id, external_id, auth_id, email, display_name, metadata)"
            " VALUES (%s, %s, %s, %s, %s, %s::jsonb){} RETURNING {}"
        ).format(sql.SQL(conflict), _COLS),
        (
            uuid7(),
            _ext(external_id),
            _opt(auth_id, "auth_id", 256),
            _opt(email, "email", 320),
            _opt(display_name, "display_name", 200),
            json_object(metadata, field="metadata", max_bytes=ctx.settings.max_metadata_bytes),
        ),
        fetch="one",
        row=User,
        conflict=(
            "auth_id already belongs to another user of this tenant"
            if upsert
            else f"user {external_id!r} exists (or its auth_id is taken)"
        ),
    )


def ensure(
    ctx: Ctx,
    external_id: str,
    *,
    auth_id: str | None = None,
    email: str | None = None,
    display_name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Plan[User]:
    """The user with this external id, created on first sight (tenant-wide scope)."""
    ctx.scope.require_tenant()
    existing = yield Query(
        sql.SQL("SELECT {} FROM llmbase.users WHERE external_id = %s").format(_COLS),
        (_ext(external_id),),
        fetch="optional",
        row=User,
    )
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    row = yield _insert(
        ctx,
        external_id,
        auth_id=auth_id,
        email=email,
        display_name=display_name,
        metadata=metadata,
        upsert=True,
    )
    return row  # type: ignore[no-any-return]


def create(
    ctx: Ctx,
    external_id: str,
    *,
    auth_id: str | None = None,
    email: str | None = None,
    display_name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Plan[User]:
    ctx.scope.require_tenant()
    row = yield _insert(
        ctx,
        external_id,
        auth_id=auth_id,
        email=email,
        display_name=display_name,
        metadata=metadata,
        upsert=False,
    )
    return row  # type: ignore[no-any-return]


def get(ctx: Ctx, user: UUID | str | None = None) -> Plan[User]:
    """A user by id or external id (default: the scope's user)."""
    if user is None:
        uid: UUID | None = ctx.scope.require_user()
        key: Any = uid
        col = sql.Identifier("id")
    elif isinstance(user, UUID):
        key, col = user, sql.Identifier("id")
    else:
        key, col = _ext(user, "user"), sql.Identifier("external_id")
    row = yield Query(
        sql.SQL("SELECT {} FROM llmbase.users WHERE {} = %s").format(_COLS, col),
        (key,),
        fetch="one",
        row=User,
        not_found=NotFound("user", key),
    )
    return row  # type: ignore[no-any-return]


def list_(ctx: Ctx, *, limit: int = 100, after: str | None = None) -> Plan[Page[User]]:
    """Users of the tenant by external id."""
    ctx.scope.require_tenant()
    n = check_limit(limit)
    rows: list[User] = yield Query(
        sql.SQL("SELECT {} FROM llmbase.users WHERE external_id > %s ORDER BY external_id LIMIT %s").format(
            _COLS
        ),
        (after or "", n + 1),
        row=User,
    )
    items = rows[:n]
    return Page(items, items[-1].external_id if len(rows) > n else None)


def update(
    ctx: Ctx,
    user_id: UUID | str | None = None,
    *,
    email: str | None = None,
    display_name: str | None = None,
    auth_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    is_active: bool | None = None,
) -> Plan[User]:
    uid = parse_id(user_id, field="user_id") if user_id else ctx.scope.require_user()
    row = yield Query(
        sql.SQL(
            "UPDATE llmbase.users SET email = coalesce(%s, email), display_name = coalesce(%s, display_name),"
            " auth_id = coalesce(%s, auth_id), metadata = coalesce(%s::jsonb, metadata),"
            " is_active = coalesce(%s, is_active) WHERE id = %s RETURNING {}"
        ).format(_COLS),
        (
            _opt(email, "email", 320),
            _opt(display_name, "display_name", 200),
            _opt(auth_id, "auth_id", 256),
            None
            if metadata is None
            else json_object(metadata, field="metadata", max_bytes=ctx.settings.max_metadata_bytes),
            is_active,
            uid,
        ),
        fetch="one",
        row=User,
        not_found=NotFound("user", uid),
        conflict="auth_id already belongs to another user of this tenant",
    )
    return row  # type: ignore[no-any-return]


def profile(ctx: Ctx, user_id: UUID | str | None = None) -> Plan[Profile]:
    uid = parse_id(user_id, field="user_id") if user_id else ctx.scope.require_user()
    row = yield Query(
        sql.SQL("SELECT {} FROM llmbase.user_profiles WHERE user_id = %s").format(_PROFILE_COLS),
        (uid,),
        fetch="one",
        row=Profile,
        not_found=NotFound("user", uid),
    )
    return row  # type: ignore[no-any-return]


def set_preferences(
    ctx: Ctx, preferences: Mapping[str, Any], user_id: UUID | str | None = None
) -> Plan[Profile]:
    uid = parse_id(user_id, field="user_id") if user_id else ctx.scope.require_user()
    row = yield Query(
        sql.SQL(
            "UPDATE llmbase.user_profiles SET preferences = %s::jsonb WHERE user_id = %s RETURNING {}"
        ).format(_PROFILE_COLS),
        (
            json_object(preferences, field="preferences", max_bytes=ctx.settings.max_metadata_bytes),
            uid,
        ),
        fetch="one",
        row=Profile,
        not_found=NotFound("user", uid),
    )
    return row  # type: ignore[no-any-return]
