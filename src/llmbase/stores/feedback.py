"""Feedback on messages: one rating per user per message; rating again updates it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from .._ids import uuid7
from .._sanitize import bounded_text, json_object
from ..errors import NotFound, ValidationError
from ._common import Ctx, parse_id
from ._plan import Plan, Query

__all__ = ["ConversationFeedback", "Feedback", "FeedbackSummary"]


@dataclass(frozen=True)
class Feedback:
    id: UUID
    tenant_id: UUID
    message_id: UUID
    conversation_id: UUID
    user_id: UUID
    rating: int | None
    score: float | None
    comment: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class FeedbackSummary:
    message_id: UUID
    conversation_id: UUID
    thumbs_up: int
    thumbs_down: int
    score_count: int
    score_avg: float | None
    comment_count: int
    feedback_count: int


@dataclass(frozen=True)
class ConversationFeedback:
    conversation_id: UUID
    thumbs_up: int
    thumbs_down: int
    score_count: int
    score_avg: float | None
    comment_count: int
    feedback_count: int
    rated_messages: int


_COLS = sql.SQL(
    "id, tenant_id, message_id, conversation_id, user_id, rating, score, comment, metadata,"
    " created_at, updated_at"
)
_RATINGS: dict[object, int] = {"up": 1, "down": -1, 1: 1, -1: -1}  # True/False hash as 1/0


def _rating(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1 if value else -1
    if isinstance(value, str | int) and value in _RATINGS:
        return _RATINGS[value]
    raise ValidationError("must be 'up', 'down', 1 or -1", field="rating")


def _score(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValidationError("must be a number from 0 to 1", field="score")
    return float(value)


def rate(
    ctx: Ctx,
    message_id: UUID | str,
    *,
    rating: str | int | None = None,
    score: float | None = None,
    comment: str | None = None,
    user_id: UUID | str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Plan[Feedback]:
    """Rate a message as the scope's user (or `user_id` in tenant-wide scope)."""
    ctx.scope.require_tenant()
    mid = parse_id(message_id, field="message_id")
    uid = parse_id(user_id, field="user_id") if user_id else ctx.scope.require_user()
    r, s = _rating(rating), _score(score)
    text = None if comment is None else bounded_text(comment, field="comment", max_chars=10_000)
    if r is None and s is None and text is None:
        raise ValidationError("give a rating, a score or a comment", field="rating")
    row = yield Query(
        sql.SQL(
            "INSERT INTO llmbase.feedback (id, message_id, conversation_id, user_id, rating, score,"
            " comment, metadata)"
            " SELECT %s, m.id, m.conversation_id, %s, %s, %s, %s, %s::jsonb"
            " FROM llmbase.messages m WHERE m.id = %s"
            " ON CONFLICT (tenant_id, message_id, user_id) DO UPDATE SET rating = EXCLUDED.rating,"
            " score = EXCLUDED.score, comment = EXCLUDED.comment, metadata = EXCLUDED.metadata"
            " RETURNING {}"
        ).format(_COLS),
        (
            uuid7(),
            uid,
            r,
            s,
            text,
            json_object(metadata, field="metadata", max_bytes=ctx.settings.max_metadata_bytes),
            mid,
        ),
        fetch="one",
        row=Feedback,
        not_found=NotFound("message", mid),
        fk_not_found=NotFound("user", uid),
    )
    return row  # type: ignore[no-any-return]


def get(ctx: Ctx, message_id: UUID | str, *, user_id: UUID | str | None = None) -> Plan[Feedback | None]:
    """The given (or current) user's feedback on a message, or None."""
    mid = parse_id(message_id, field="message_id")
    uid = parse_id(user_id, field="user_id") if user_id else ctx.scope.require_user()
    row = yield Query(
        sql.SQL("SELECT {} FROM llmbase.feedback WHERE message_id = %s AND user_id = %s").format(_COLS),
        (mid, uid),
        fetch="optional",
        row=Feedback,
    )
    return row  # type: ignore[no-any-return]


def remove(ctx: Ctx, message_id: UUID | str, *, user_id: UUID | str | None = None) -> Plan[None]:
    mid = parse_id(message_id, field="message_id")
    uid = parse_id(user_id, field="user_id") if user_id else ctx.scope.require_user()
    n = yield Query(
        "DELETE FROM llmbase.feedback WHERE message_id = %s AND user_id = %s",
        (mid, uid),
        fetch="rowcount",
    )
    if n == 0:
        raise NotFound("feedback", mid)
    return None


def summary(ctx: Ctx, message_id: UUID | str) -> Plan[FeedbackSummary]:
    """Totals for one message (zeros when nobody rated it yet)."""
    mid = parse_id(message_id, field="message_id")
    row = yield Query(
        "SELECT m.id AS message_id, m.conversation_id,"
        " coalesce(s.thumbs_up, 0) AS thumbs_up, coalesce(s.thumbs_down, 0) AS thumbs_down,"
        " coalesce(s.score_count, 0) AS score_count,"
        " CASE WHEN s.score_count > 0 THEN s.score_sum / s.score_count END AS score_avg,"
        " coalesce(s.comment_count, 0) AS comment_count, coalesce(s.feedback_count, 0) AS feedback_count"
        " FROM llmbase.messages m LEFT JOIN llmbase.feedback_summary s"
        " ON s.tenant_id = m.tenant_id AND s.message_id = m.id WHERE m.id = %s",
        (mid,),
        fetch="one",
        row=FeedbackSummary,
        not_found=NotFound("message", mid),
    )
    return row  # type: ignore[no-any-return]


def conversation_summary(ctx: Ctx, conversation_id: UUID | str) -> Plan[ConversationFeedback]:
    """Totals for a conversation, from the per-message summaries."""
    cid = parse_id(conversation_id, field="conversation_id")
    row = yield Query(
        "SELECT c.id AS conversation_id,"
        " coalesce(f.thumbs_up, 0) AS thumbs_up, coalesce(f.thumbs_down, 0) AS thumbs_down,"
        " coalesce(f.score_count, 0) AS score_count, f.score_avg,"
        " coalesce(f.comment_count, 0) AS comment_count, coalesce(f.feedback_count, 0) AS feedback_count,"
        " coalesce(f.rated_messages, 0) AS rated_messages"
        " FROM llmbase.conversations c LEFT JOIN llmbase.conversation_feedback f"
        " ON f.tenant_id = c.tenant_id AND f.conversation_id = c.id WHERE c.id = %s",
        (cid,),
        fetch="one",
        row=ConversationFeedback,
        not_found=NotFound("conversation", cid),
    )
    return row  # type: ignore[no-any-return]
