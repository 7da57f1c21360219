"""The append-only audit log: who changed what, when, before and after (seed 003 audit_logs).

Row changes of the administrative tables (tenants, users, API keys, settings, price
overrides, collections, rate limits, budgets) are recorded by triggers in the database,
whatever made them; `record()` adds an event of your own (an export, a manual review). The
application role can insert and read, never update, delete or truncate.

    client.audit.list(action="api_key.create", since=...)
    client.audit.record("report.export", "report", "monthly-2026-11", details={"rows": 120})
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from ._sanitize import json_object
from .errors import ValidationError
from .stores._bind import AsyncStore, Store, aop, op
from .stores._common import Ctx, Page, check_limit, decode_cursor, encode_cursor
from .stores._plan import Plan, Query

__all__ = ["AsyncAudit", "Audit", "AuditEntry"]

_ACTION = re.compile(r"^[a-z_]+\.[a-z_]+$")


@dataclass(frozen=True)
class AuditEntry:
    id: UUID
    tenant_id: UUID | None
    at: datetime
    actor: str
    actor_user_id: UUID | None
    db_user: str
    action: str
    object_type: str
    object_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    details: dict[str, Any]


_COLS = sql.SQL(
    "id, tenant_id, at, actor, actor_user_id, db_user, action, object_type, object_id, before, after, details"
)


def _text(value: Any, field: str, maximum: int) -> str:
    if not isinstance(value, str) or not value or len(value) > maximum or "\x00" in value:
        raise ValidationError(f"must be a non-empty string of at most {maximum} characters", field=field)
    return value


def list_(
    ctx: Ctx,
    *,
    actor: str | None = None,
    actor_user_id: UUID | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Plan[Page[AuditEntry]]:
    """Newest first. `action` ending in `.` or `.*` matches a prefix ("api_key.*")."""
    where: list[sql.Composable] = []
    params: list[Any] = []
    if actor is not None:
        where.append(sql.SQL("actor = %s"))
        params.append(_text(actor, "actor", 200))
    if actor_user_id is not None:
        where.append(sql.SQL("actor_user_id = %s"))
        params.append(actor_user_id)
    if action is not None:
        _text(action, "action", 200)
        if action.endswith(".*") or action.endswith("."):
            where.append(sql.SQL("action LIKE %s"))
            params.append(action.rstrip("*").replace("_", r"\_") + "%")
        else:
            where.append(sql.SQL("action = %s"))
            params.append(action)
    if object_type is not None:
        where.append(sql.SQL("object_type = %s"))
        params.append(_text(object_type, "object_type", 100))
    if object_id is not None:
        where.append(sql.SQL("object_id = %s"))
        params.append(_text(str(object_id), "object_id", 500))
    if since is not None:
        where.append(sql.SQL("at >= %s"))
        params.append(since)
    if until is not None:
        where.append(sql.SQL("at < %s"))
        params.append(until)
    if cursor:
        at, ident = decode_cursor(cursor)
        where.append(sql.SQL("(at, id) < (%s, %s)"))
        params.extend([at, ident])
    n = check_limit(limit)
    clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    rows: list[AuditEntry] = yield Query(
        sql.SQL("SELECT {} FROM llmbase.audit_log{} ORDER BY at DESC, id DESC LIMIT %s").format(
            _COLS, clause
        ),
        (*params, n + 1),
        row=AuditEntry,
    )
    more = len(rows) > n
    rows = rows[:n]
    return Page(rows, encode_cursor(rows[-1].at, rows[-1].id) if more and rows else None)


def record(
    ctx: Ctx,
    action: str,
    object_type: str,
    object_id: str | None = None,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Plan[UUID]:
    """Record an administrative event of your own (action "noun.verb", e.g. "report.export")."""
    if not isinstance(action, str) or not _ACTION.match(action) or len(action) > 200:
        raise ValidationError('must look like "noun.verb" (lowercase letters and _)', field="action")
    _text(object_type, "object_type", 100)
    if object_id is not None:
        _text(str(object_id), "object_id", 500)
    size = ctx.settings.max_metadata_bytes
    docs = [
        None if v is None else json_object(v, field=name, max_bytes=size)
        for name, v in (("before", before), ("after", after), ("details", details or {}))
    ]
    ident = yield Query(
        "SELECT llmbase.audit_event(%s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb)",
        (action, object_type, None if object_id is None else str(object_id), *docs),
        fetch="one",
        tuples=True,
    )
    return ident[0]  # type: ignore[no-any-return]


class Audit(Store):
    """The audit log of the current scope (operator: every tenant's and operator events)."""

    list = op(list_)
    record = op(record)


class AsyncAudit(AsyncStore):
    list = aop(list_)
    record = aop(record)
