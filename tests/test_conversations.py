"""Conversations and messages through the SDK: CRUD, pagination, filters, history, completion."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

import llmbase
from llmbase import NotFound, ValidationError


def test_create_get_list_rename_archive_delete(client: llmbase.LLMBase) -> None:
    alice = client.user("alice")
    conv = alice.conversations.create(title="First", model="gpt-4o-mini", metadata={"channel": "web"})
    assert conv.user_id == alice.scope().user_id
    assert conv.message_count == 0 and conv.total_tokens == 0
    assert alice.conversations.get(conv.id) == conv

    renamed = alice.conversations.rename(conv.id, "Renamed")
    assert renamed.title == "Renamed"
    assert renamed.updated_at >= conv.updated_at

    archived = alice.conversations.archive(conv.id)
    assert archived.is_archived
    assert conv.id not in [c.id for c in alice.conversations.list()]
    assert conv.id in [c.id for c in alice.conversations.list(archived=True)]
    assert conv.id in [c.id for c in alice.conversations.list(archived=None)]
    assert not alice.conversations.unarchive(conv.id).is_archived

    alice.conversations.delete(conv.id)
    with pytest.raises(NotFound):
        alice.conversations.get(conv.id)
    with pytest.raises(NotFound):
        alice.conversations.delete(conv.id)


def test_cursor_pagination_visits_every_row_once(client: llmbase.LLMBase) -> None:
    bob = client.user("bob")
    made = {bob.conversations.create(title=f"c{i}").id for i in range(23)}
    seen: list[uuid.UUID] = []
    cursor = None
    pages = 0
    while True:
        page = bob.conversations.list(limit=5, cursor=cursor)
        seen.extend(c.id for c in page)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == made
    times = [c.updated_at for c in bob.conversations.list(limit=100)]
    assert times == sorted(times, reverse=True)


def test_list_filters(client: llmbase.LLMBase) -> None:
    u = client.user("carol")
    a = u.conversations.create(title="a", model="m1", metadata={"channel": "slack", "n": 1})
    u.conversations.create(title="b", model="m2", metadata={"channel": "web"})
    assert [c.id for c in u.conversations.list(model="m1")] == [a.id]
    assert [c.id for c in u.conversations.list(metadata={"channel": "slack"})] == [a.id]
    other = client.user("dave")
    other.conversations.create(title="d")
    # tenant-wide scope sees all users' conversations; filter by user
    assert {c.id for c in client.conversations.list(user_id=u.scope().user_id)} >= {a.id}
    assert len(client.conversations.list(user_id=other.scope().user_id)) == 1


def test_messages_update_totals_and_history(client: llmbase.LLMBase) -> None:
    u = client.user("erin")
    conv = u.conversations.create(title="t")
    u.conversations.add_message(conv.id, role="system", content="be brief")
    m1 = u.conversations.add_message(conv.id, role="user", content="hi", token_count=3)
    m2 = u.conversations.add_message(
        conv.id,
        role="assistant",
        content="hello",
        token_count=7,
        cost_usd=Decimal("0.0012"),
        latency_ms=420,
        provider_response_ms=400,
        model="gpt-4o-mini",
    )
    assert (m1.seq, m2.seq) == (2, 3)
    assert m1.user_id == u.scope().user_id and m2.user_id is None
    got = u.conversations.get(conv.id)
    assert got.message_count == 3
    assert got.total_tokens == 10
    assert got.total_cost_usd == Decimal("0.0012")
    assert got.last_message_at == m2.created_at
    assert got.updated_at >= conv.updated_at
    assert [m.role for m in u.conversations.history(conv.id)] == ["system", "user", "assistant"]
    assert [m.seq for m in u.conversations.history(conv.id, limit=2)] == [2, 3]
    assert [m.role for m in u.conversations.history(conv.id, roles=["user"])] == ["user"]
    assert u.conversations.get_message(m2.id) == m2


def test_complete_records_timing(client: llmbase.LLMBase) -> None:
    u = client.user("frank")
    conv = u.conversations.create()
    done = u.conversations.complete(conv.id, total_iterations=4)
    assert done.completed_at is not None
    assert done.total_iterations == 4
    assert done.total_time_ms is not None and done.total_time_ms >= 0
    explicit = u.conversations.complete(conv.id, total_time_ms=1234)
    assert explicit.total_time_ms == 1234 and explicit.total_iterations == 4


def test_profile_statistics_follow_activity(client: llmbase.LLMBase) -> None:
    u = client.user("gina")
    conv = u.conversations.create()
    u.conversations.add_message(conv.id, role="user", content="q", token_count=5, cost_usd=0.5)
    u.conversations.add_message(conv.id, role="assistant", content="a", token_count=10, cost_usd=0.25)
    p = u.users.profile()
    assert p.conversation_count == 1
    assert p.message_count == 2
    assert p.total_tokens == 15
    assert p.total_cost_usd == Decimal("0.75")
    assert p.last_active_at is not None and p.first_active_at is not None


def test_shared_conversation_visible_to_users(client: llmbase.LLMBase) -> None:
    shared = client.conversations.create(title="announcements", shared=True)
    assert shared.user_id is None
    u = client.user("hank")
    assert u.conversations.get(shared.id).id == shared.id
    u.conversations.add_message(shared.id, role="user", content="hello all")
    assert client.conversations.get(shared.id).message_count == 1


def test_invalid_inputs_are_validation_errors(client: llmbase.LLMBase) -> None:
    u = client.user("ivy")
    conv = u.conversations.create()
    with pytest.raises(ValidationError) as e:
        u.conversations.add_message(conv.id, role="wizard", content="x")
    assert e.value.field == "role"
    with pytest.raises(ValidationError) as e:
        u.conversations.add_message(conv.id, role="user", content="x", token_count=-1)
    assert e.value.field == "token_count"
    with pytest.raises(ValidationError) as e:
        u.conversations.add_message(conv.id, role="user", content="x", cost_usd=float("nan"))
    assert e.value.field == "cost_usd"
    with pytest.raises(ValidationError) as e:
        u.conversations.list(cursor="not-a-cursor")
    assert e.value.field == "cursor"
    with pytest.raises(ValidationError) as e:
        u.conversations.list(limit=0)
    assert e.value.field == "limit"
    with pytest.raises(ValidationError) as e:
        u.conversations.get("not-a-uuid")
    assert e.value.field == "conversation_id"
    assert u.conversations.get(conv.id).message_count == 0


async def test_async_client_runs_the_same_plans(aclient: llmbase.AsyncLLMBase) -> None:
    u = aclient.user("async-user")
    conv = await u.conversations.create(title="async")
    msg = await u.conversations.add_message(conv.id, role="user", content="hi", token_count=2)
    reply = await u.conversations.add_message(conv.id, role="assistant", content="yo")
    await u.feedback.rate(reply.id, rating="down", comment="meh")
    got = await u.conversations.get(conv.id)
    assert got.message_count == 2 and got.total_tokens == 2
    assert [m.id for m in await u.conversations.history(conv.id)] == [msg.id, reply.id]
    summary = await u.feedback.conversation_summary(conv.id)
    assert summary.thumbs_down == 1
    with pytest.raises(NotFound):
        await u.conversations.get(uuid.uuid4())


def test_sync_and_async_clients_expose_the_same_operations() -> None:
    from llmbase import client as c
    from llmbase.documents import store

    pairs = [
        (c.Conversations, c.AsyncConversations),
        (c.Feedback, c.AsyncFeedback),
        (c.Users, c.AsyncUsers),
        (c.Tenants, c.AsyncTenants),
        (c.TenantSettingsStore, c.AsyncTenantSettingsStore),
        (c.Keys, c.AsyncKeys),
        (store.Collections, store.AsyncCollections),
    ]
    for sync_cls, async_cls in pairs:
        sync_ops = {k: v.fn for k, v in vars(sync_cls).items() if hasattr(v, "fn")}
        async_ops = {k: v.fn for k, v in vars(async_cls).items() if hasattr(v, "fn")}
        assert sync_ops, sync_cls
        assert sync_ops == async_ops, sync_cls.__name__
    public = {n for n in dir(c.LLMBase) if not n.startswith("_")} - {"close"}
    apublic = {n for n in dir(c.AsyncLLMBase) if not n.startswith("_")} - {"aclose"}
    assert public == apublic
    # the collection handles: the same methods, over the same plans and pipelines
    handle = {n for n in dir(store.CollectionHandle) if not n.startswith("_")}
    assert handle == {n for n in dir(store.AsyncCollectionHandle) if not n.startswith("_")}


def test_user_cannot_create_shared_conversation(client: llmbase.LLMBase) -> None:
    with pytest.raises(llmbase.PermissionDenied):
        client.user("jill").conversations.create(shared=True)
