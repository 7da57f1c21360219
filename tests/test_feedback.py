"""Feedback: one per user per message, re-rating updates, summaries always current."""

from __future__ import annotations

import pytest

import llmbase
from llmbase import NotFound, ValidationError


def _reply(client: llmbase.LLMBase) -> tuple[llmbase.Conversation, llmbase.Message]:
    owner = client.user("owner")
    conv = client.conversations.create(title="rated", shared=True)
    owner.conversations.add_message(conv.id, role="user", content="q")
    return conv, owner.conversations.add_message(conv.id, role="assistant", content="a")


def test_rate_again_updates_and_summary_is_current(client: llmbase.LLMBase) -> None:
    conv, reply = _reply(client)
    u1, u2 = client.user("u1"), client.user("u2")
    first = u1.feedback.rate(reply.id, rating="up")
    s = u1.feedback.summary(reply.id)
    assert (s.thumbs_up, s.thumbs_down, s.feedback_count) == (1, 0, 1)

    again = u1.feedback.rate(reply.id, rating="down", comment="changed my mind", score=0.2)
    assert again.id == first.id  # one row per user per message
    u2.feedback.rate(reply.id, rating=1, score=0.8)
    s = client.feedback.summary(reply.id)
    assert (s.thumbs_up, s.thumbs_down, s.comment_count, s.feedback_count) == (1, 1, 1, 2)
    assert s.score_count == 2 and s.score_avg == pytest.approx(0.5)

    c = client.feedback.conversation_summary(conv.id)
    assert (c.thumbs_up, c.thumbs_down, c.rated_messages, c.feedback_count) == (1, 1, 1, 2)

    u1.feedback.remove(reply.id)
    s = client.feedback.summary(reply.id)
    assert (s.thumbs_up, s.thumbs_down, s.feedback_count) == (1, 0, 1)
    assert u1.feedback.get(reply.id) is None
    assert u2.feedback.get(reply.id) is not None
    assert client.user("u2").users.profile().feedback_count == 1


def test_summary_of_unrated_message_is_zero(client: llmbase.LLMBase) -> None:
    _, reply = _reply(client)
    s = client.feedback.summary(reply.id)
    assert (s.thumbs_up, s.thumbs_down, s.feedback_count, s.score_avg) == (0, 0, 0, None)


def test_bad_feedback_is_rejected_and_changes_nothing(client: llmbase.LLMBase) -> None:
    _, reply = _reply(client)
    u = client.user("critic")
    for kwargs, field in (
        ({"rating": "sideways"}, "rating"),
        ({"rating": 5}, "rating"),
        ({"score": 1.5}, "score"),
        ({"score": float("nan")}, "score"),
        ({}, "rating"),
    ):
        with pytest.raises(ValidationError) as e:
            u.feedback.rate(reply.id, **kwargs)  # type: ignore[arg-type]
        assert e.value.field == field
    with pytest.raises(NotFound):
        u.feedback.rate("01890000-0000-7000-8000-000000000000", rating="up")
    assert client.feedback.summary(reply.id).feedback_count == 0
