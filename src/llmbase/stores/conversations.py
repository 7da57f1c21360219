"""Conversations and their messages: create, read, list, rename, archive, delete, history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import sql

from .._ids import uuid7
from .._sanitize import bounded_text, json_object
from ..errors import NotFound, ValidationError
from ._common import Ctx, Page, check_limit, decode_cursor, encode_cursor, parse_id
from ._plan import Plan, Query

__all__ = ["ROLES", "Conversation", "Message"]

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Conversation:
    id: UUID
    tenant_id: UUID
    user_id: UUID | None
    title: str | None
    model: str | None
    metadata: dict[str, Any]
    is_archived: bool
    message_count: int
    total_tokens: int
    total_cost_usd: Decimal
    last_message_at: datetime | None
    completed_at: datetime | None
    total_time_ms: int | None
    total_iterations: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Message:
    id: UUID
    tenant_id: UUID
    conversation_id: UUID
    seq: int
    role: str
    content: str
    user_id: UUID | None
    model: str | None
    token_count: int | None
    cost_usd: Decimal | None
    latency_ms: int | None
    provider_response_ms: int | None
    metadata: dict[str, Any]
    created_at: datetime


_CONV_COLS = sql.SQL(
    "id, tenant_id, user_id, title, model, metadata, is_archived, message_count, total_tokens,"
    " total_cost_usd, last_message_at, completed_at, total_time_ms, total_iterations,"
    " created_at, updated_at"
)
_MSG_COLS = sql.SQL(
    "id, tenant_id, conversation_id, seq, role, content, user_id, model, token_count, cost_usd,"
    " latency_ms, provider_response_ms, metadata, created_at"
)


def _short(value: str | None, field: str, limit: int) -> str | None:
    if value is None:
        return None
    return bounded_text(value, field=field, max_chars=limit)


def _nonneg(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 2**31 - 1:
        raise ValidationError("must be a non-negative integer", field=field)
    return value


def _cost(value: float | Decimal | None, field: str = "cost_usd") -> Decimal | None:
    if value is None:
        return None
    try:
        d = Decimal(str(value))
    except ArithmeticError as exc:
        raise ValidationError("must be a number", field=field) from exc
    if not d.is_finite() or d < 0:
        raise ValidationError("must be a finite, non-negative number", field=field)
    return d


def create(
    ctx: Ctx,
    *,
    title: str | None = None,
    model: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    user_id: UUID | str | None = None,
    shared: bool = False,
    id: UUID | str | None = None,
) -> Plan[Conversation]:
    """A new conversation, owned by the scope's user (or `user_id`, or nobody when shared)."""
    ctx.scope.require_tenant()
    owner = None if shared else (parse_id(user_id, field="user_id") if user_id else ctx.scope.user_id)
    row = yield Query(
        sql.SQL(
            "INSERT INTO llmbase.conversations (id, user_id, title, model, metadata)"
            " VALUES (%s, %s, %s, %s, %s::jsonb) RETURNING {}"
        ).format(_CONV_COLS),
        (
            parse_id(id) if id else uuid7(),
            owner,
            _short(title, "title", 500),
            _short(model, "model", 200),
            json_object(metadata, field="metadata", max_bytes=ctx.settings.max_metadata_bytes),
        ),
        fetch="one",
        row=Conversation,
        fk_not_found=NotFound("user", owner) if owner else None,
        conflict="a conversation with this id exists",
    )
    return row  # type: ignore[no-any-return]


def get(ctx: Ctx, conversation_id: UUID | str) -> Plan[Conversation]:
    cid = parse_id(conversation_id, field="conversation_id")
    row = yield Query(
        sql.SQL("SELECT {} FROM llmbase.conversations WHERE id = %s").format(_CONV_COLS),
        (cid,),
        fetch="one",
        row=Conversation,
        not_found=NotFound("conversation", cid),
    )
    return row  # type: ignore[no-any-return]


def list_(
    ctx: Ctx,
    *,
    limit: int = 50,
    cursor: str | None = None,
    archived: bool | None = False,
    user_id: UUID | str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Plan[Page[Conversation]]:
    """Newest activity first. `archived=None` lists both; `metadata` matches by containment."""
    ctx.scope.require_tenant()
    where: list[sql.Composable] = []
    params: list[Any] = []
    if archived is not None:
        where.append(sql.SQL("is_archived = %s"))
        params.append(archived)
    if user_id is not None:
        where.append(sql.SQL("user_id = %s"))
        params.append(parse_id(user_id, field="user_id"))
    if model is not None:
        where.append(sql.SQL("model = %s"))
        params.append(model)
    if since is not None:
        where.append(sql.SQL("updated_at >= %s"))
        params.append(since)
    if until is not None:
        where.append(sql.SQL("updated_at < %s"))
        params.append(until)
    if metadata:
        where.append(sql.SQL("metadata @> %s::jsonb"))
        params.append(json_object(metadata, field="metadata", max_bytes=ctx.settings.max_metadata_bytes))
    if cursor:
        at, ident = decode_cursor(cursor)
        where.append(sql.SQL("(updated_at, id) < (%s, %s)"))
        params.extend([at, ident])
    n = check_limit(limit)
    clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    rows: list[Conversation] = yield Query(
        sql.SQL("SELECT {} FROM llmbase.conversations{} ORDER BY updated_at DESC, id DESC LIMIT %s").format(
            _CONV_COLS, clause
        ),
        (*params, n + 1),
        row=Conversation,
    )
    more = len(rows) > n
    items = rows[:n]
    nxt = encode_cursor(items[-1].updated_at, items[-1].id) if more else None
    return Page(items, nxt)


def update(
    ctx: Ctx,
    conversation_id: UUID | str,
    *,
    title: str | None = None,
    model: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    archived: bool | None = None,
) -> Plan[Conversation]:
    """Change title, model, metadata (replaced) or the archived flag."""
    cid = parse_id(conversation_id, field="conversation_id")
    sets: list[sql.Composable] = []
    params: list[Any] = []
    if title is not None:
        sets.append(sql.SQL("title = %s"))
        params.append(_short(title, "title", 500))
    if model is not None:
        sets.append(sql.SQL("model = %s"))
        params.append(_short(model, "model", 200))
    if metadata is not None:
        sets.append(sql.SQL("metadata = %s::jsonb"))
        params.append(json_object(metadata, field="metadata", max_bytes=ctx.settings.max_metadata_bytes))
    if archived is not None:
        sets.append(sql.SQL("is_archived = %s"))
        params.append(bool(archived))
    if not sets:
        return (yield from get(ctx, cid))
    row = yield Query(
        sql.SQL("UPDATE llmbase.conversations SET {} WHERE id = %s RETURNING {}").format(
            sql.SQL(", ").join(sets), _CONV_COLS
        ),
        (*params, cid),
        fetch="one",
        row=Conversation,
        not_found=NotFound("conversation", cid),
    )
    return row  # type: ignore[no-any-return]


def complete(
    ctx: Ctx,
    conversation_id: UUID | str,
    *,
    total_time_ms: int | None = None,
    total_iterations: int | None = None,
) -> Plan[Conversation]:
    """Mark a conversation completed (seed 004): completion time, total time, iterations."""
    cid = parse_id(conversation_id, field="conversation_id")
    row = yield Query(
        sql.SQL(
            "UPDATE llmbase.conversations SET completed_at = now(),"
            " total_time_ms = coalesce(%s, (extract(epoch FROM now() - created_at) * 1000)::bigint),"
            " total_iterations = coalesce(%s, total_iterations)"
            " WHERE id = %s RETURNING {}"
        ).format(_CONV_COLS),
        (
            _nonneg(total_time_ms, "total_time_ms"),
            _nonneg(total_iterations, "total_iterations"),
            cid,
        ),
        fetch="one",
        row=Conversation,
        not_found=NotFound("conversation", cid),
    )
    return row  # type: ignore[no-any-return]


def delete(ctx: Ctx, conversation_id: UUID | str) -> Plan[None]:
    """Delete a conversation with its messages and feedback."""
    cid = parse_id(conversation_id, field="conversation_id")
    n = yield Query("DELETE FROM llmbase.conversations WHERE id = %s", (cid,), fetch="rowcount")
    if n == 0:
        raise NotFound("conversation", cid)
    return None


def add_message(
    ctx: Ctx,
    conversation_id: UUID | str,
    *,
    role: str,
    content: str,
    user_id: UUID | str | None = None,
    model: str | None = None,
    token_count: int | None = None,
    cost_usd: float | Decimal | None = None,
    latency_ms: int | None = None,
    provider_response_ms: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    id: UUID | str | None = None,
) -> Plan[Message]:
    """Append a message; the conversation's totals and updated_at move in the same statement."""
    cid = parse_id(conversation_id, field="conversation_id")
    if role not in ROLES:
        raise ValidationError(f"must be one of {', '.join(ROLES)}", field="role")
    row = yield Query(
        sql.SQL(
            "INSERT INTO llmbase.messages (id, conversation_id, role, content, user_id, model,"
            " token_count, cost_usd, latency_ms, provider_response_ms, metadata)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb) RETURNING {}"
        ).format(_MSG_COLS),
        (
            parse_id(id) if id else uuid7(),
            cid,
            role,
            bounded_text(content, field="content", max_chars=ctx.settings.max_content_chars),
            parse_id(user_id, field="user_id")
            if user_id
            else (ctx.scope.user_id if role == "user" else None),
            _short(model, "model", 200),
            _nonneg(token_count, "token_count"),
            _cost(cost_usd),
            _nonneg(latency_ms, "latency_ms"),
            _nonneg(provider_response_ms, "provider_response_ms"),
            json_object(metadata, field="metadata", max_bytes=ctx.settings.max_metadata_bytes),
        ),
        fetch="one",
        row=Message,
        fk_not_found=NotFound("conversation", cid),
        conflict="a message with this id exists",
    )
    return row  # type: ignore[no-any-return]


def history(
    ctx: Ctx,
    conversation_id: UUID | str,
    *,
    limit: int | None = None,
    before_seq: int | None = None,
    roles: Sequence[str] | None = None,
) -> Plan[list[Message]]:
    """Messages in order. `limit` keeps the most recent N (still returned oldest first)."""
    cid = parse_id(conversation_id, field="conversation_id")
    yield from get(ctx, cid)  # NotFound for a missing or invisible conversation
    where: list[sql.Composable] = [sql.SQL("conversation_id = %s")]
    params: list[Any] = [cid]
    if before_seq is not None:
        where.append(sql.SQL("seq < %s"))
        params.append(_nonneg(before_seq, "before_seq"))
    if roles:
        bad = [r for r in roles if r not in ROLES]
        if bad:
            raise ValidationError(f"unknown role {bad[0]!r}", field="roles")
        where.append(sql.SQL("role = ANY(%s)"))
        params.append(list(roles))
    cond = sql.SQL(" AND ").join(where)
    if limit is None:
        q = sql.SQL("SELECT {} FROM llmbase.messages WHERE {} ORDER BY seq").format(_MSG_COLS, cond)
    else:
        params.append(check_limit(limit, 100_000))
        q = sql.SQL(
            "SELECT * FROM (SELECT {} FROM llmbase.messages WHERE {} ORDER BY seq DESC LIMIT %s) m ORDER BY seq"
        ).format(_MSG_COLS, cond)
    rows: list[Message] = yield Query(q, params, row=Message)
    return rows


def get_message(ctx: Ctx, message_id: UUID | str) -> Plan[Message]:
    mid = parse_id(message_id, field="message_id")
    row = yield Query(
        sql.SQL("SELECT {} FROM llmbase.messages WHERE id = %s").format(_MSG_COLS),
        (mid,),
        fetch="one",
        row=Message,
        not_found=NotFound("message", mid),
    )
    return row  # type: ignore[no-any-return]


def rename(ctx: Ctx, conversation_id: UUID | str, title: str) -> Plan[Conversation]:
    return (yield from update(ctx, conversation_id, title=title))


def archive(ctx: Ctx, conversation_id: UUID | str) -> Plan[Conversation]:
    """Soft delete: hidden from default listings, kept with its messages."""
    return (yield from update(ctx, conversation_id, archived=True))


def unarchive(ctx: Ctx, conversation_id: UUID | str) -> Plan[Conversation]:
    return (yield from update(ctx, conversation_id, archived=False))
