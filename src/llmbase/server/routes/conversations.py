"""Conversations and their messages: `/v1/conversations` (list, create, get, change, archive,
complete, delete), `/v1/conversations/{id}/messages` (history, append), `/v1/messages/{id}`.
Another tenant's (or, for a user's key, another user's) conversation is a 404, exactly like
a missing one: row-level security hides it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response

from ...errors import ValidationError
from ...stores.conversations import Conversation, Message
from ...stores.feedback import ConversationFeedback
from ..auth import Principal, require
from ..schemas import AddMessage, ConversationIn, ConversationPatch, Page
from ._common import ERRORS, Cursor, Limit, page

router = APIRouter(prefix="/v1", tags=["conversations"], responses=ERRORS)

Role = Literal["system", "user", "assistant", "tool"]


@router.get("/conversations", response_model=Page[Conversation])
def list_conversations(
    limit: Limit = 50,
    cursor: Cursor = None,
    archived: Literal["true", "false", "all"] = "false",
    user_id: UUID | None = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    principal: Principal = require("read"),
) -> dict[str, Any]:
    """Newest activity first."""
    flag = None if archived == "all" else archived == "true"
    return page(
        principal.client.conversations.list(
            limit=limit, cursor=cursor, archived=flag, user_id=user_id, model=model, since=since, until=until
        )
    )


@router.post("/conversations", response_model=Conversation, status_code=201)
def create_conversation(body: ConversationIn, principal: Principal = require("write")) -> Conversation:
    """A new conversation, owned by the key's user (or `user_id`; `shared`: the tenant's)."""
    return principal.client.conversations.create(**body.model_dump(exclude_none=True))


@router.get("/conversations/{conversation_id}", response_model=Conversation)
def get_conversation(conversation_id: UUID, principal: Principal = require("read")) -> Conversation:
    return principal.client.conversations.get(conversation_id)


@router.patch("/conversations/{conversation_id}", response_model=Conversation)
def update_conversation(
    conversation_id: UUID, body: ConversationPatch, principal: Principal = require("write")
) -> Conversation:
    """Change the title, model, metadata or archived flag."""
    return principal.client.conversations.update(conversation_id, **body.model_dump(exclude_unset=True))


@router.post("/conversations/{conversation_id}/archive", response_model=Conversation)
def archive_conversation(conversation_id: UUID, principal: Principal = require("write")) -> Conversation:
    return principal.client.conversations.archive(conversation_id)


@router.post("/conversations/{conversation_id}/unarchive", response_model=Conversation)
def unarchive_conversation(conversation_id: UUID, principal: Principal = require("write")) -> Conversation:
    return principal.client.conversations.unarchive(conversation_id)


@router.post("/conversations/{conversation_id}/complete", response_model=Conversation)
def complete_conversation(
    conversation_id: UUID,
    total_time_ms: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    total_iterations: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    principal: Principal = require("write"),
) -> Conversation:
    """Mark completion (total time defaults to the time since creation)."""
    return principal.client.conversations.complete(
        conversation_id, total_time_ms=total_time_ms, total_iterations=total_iterations
    )


@router.delete("/conversations/{conversation_id}", status_code=204, response_class=Response)
def delete_conversation(conversation_id: UUID, principal: Principal = require("write")) -> Response:
    """Delete with its messages and feedback."""
    principal.client.conversations.delete(conversation_id)
    return Response(status_code=204)


def _before(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 10:
        raise ValidationError("invalid cursor", field="cursor")
    return int(cursor)


@router.get("/conversations/{conversation_id}/messages", response_model=Page[Message])
def history(
    conversation_id: UUID,
    limit: Limit = 100,
    cursor: Cursor = None,
    roles: Annotated[list[Role] | None, Query()] = None,
    principal: Principal = require("read"),
) -> dict[str, Any]:
    """Messages oldest first: the latest `limit`; `next_cursor` pages to older ones."""
    c = principal.client.conversations
    c.get(conversation_id)  # 404 for a missing (or hidden) conversation, not an empty page
    rows = c.history(conversation_id, limit=limit, before_seq=_before(cursor), roles=roles)
    nxt = str(rows[0].seq) if len(rows) == limit and rows[0].seq > 1 else None
    return {"items": rows, "next_cursor": nxt}


@router.post("/conversations/{conversation_id}/messages", response_model=Message, status_code=201)
def add_message(conversation_id: UUID, body: AddMessage, principal: Principal = require("write")) -> Message:
    """Append a message; the conversation's totals move in the same transaction."""
    return principal.client.conversations.add_message(conversation_id, **body.model_dump(exclude_none=True))


@router.get("/conversations/{conversation_id}/feedback", response_model=ConversationFeedback)
def conversation_feedback(
    conversation_id: UUID, principal: Principal = require("read")
) -> ConversationFeedback:
    """Feedback totals of the conversation's messages."""
    principal.client.conversations.get(conversation_id)
    return principal.client.feedback.conversation_summary(conversation_id)


@router.get("/messages/{message_id}", response_model=Message)
def get_message(message_id: UUID, principal: Principal = require("read")) -> Message:
    return principal.client.conversations.get_message(message_id)
