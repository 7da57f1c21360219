"""Feedback on messages: `PUT /v1/messages/{id}/feedback` rates (again: updates),
`GET` reads the caller's own, `DELETE` removes it, `GET .../feedback/summary` totals."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from ...errors import NotFound
from ...stores.feedback import Feedback, FeedbackSummary
from ..auth import Principal, require
from ..schemas import FeedbackIn
from ._common import ERRORS

router = APIRouter(prefix="/v1/messages", tags=["feedback"], responses=ERRORS)

UserId = Annotated[UUID | None, Query(description="Whose feedback (tenant-wide keys).")]


@router.put("/{message_id}/feedback", response_model=Feedback)
def rate(message_id: UUID, body: FeedbackIn, principal: Principal = require("write")) -> Feedback:
    """Rate a message (`up`/`down`, a score 0..1, a comment); one per user per message."""
    return principal.client.feedback.rate(message_id, **body.model_dump(exclude_none=True))


@router.get("/{message_id}/feedback", response_model=Feedback)
def get_feedback(
    message_id: UUID, user_id: UserId = None, principal: Principal = require("read")
) -> Feedback:
    fb = principal.client.feedback.get(message_id, user_id=user_id)
    if fb is None:
        raise NotFound("feedback", message_id)
    return fb


@router.delete("/{message_id}/feedback", status_code=204, response_class=Response)
def remove_feedback(
    message_id: UUID, user_id: UserId = None, principal: Principal = require("write")
) -> Response:
    principal.client.conversations.get_message(message_id)  # 404 when missing or hidden
    principal.client.feedback.remove(message_id, user_id=user_id)
    return Response(status_code=204)


@router.get("/{message_id}/feedback/summary", response_model=FeedbackSummary)
def feedback_summary(message_id: UUID, principal: Principal = require("read")) -> FeedbackSummary:
    return principal.client.feedback.summary(message_id)
