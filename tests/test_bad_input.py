"""Bad input gets a specific error and harms nothing; unstorable text follows the documented rule."""

from __future__ import annotations

import uuid

import psycopg
import pytest

import llmbase
from llmbase import NotFound, PayloadTooLarge, ValidationError

NUL_TEXT = "before\x00after"
SURROGATE_TEXT = "lone \ud800 surrogate and \udfff another"


def test_nul_and_lone_surrogates_are_replaced_not_rejected(client: llmbase.LLMBase) -> None:
    u = client.user("nul\x00user")
    assert u.users.get().external_id == "nul\ufffduser"
    conv = u.conversations.create(title="t\x00", metadata={"k\x00ey": "v\ud83dal", "nested": [{"x": "\x00"}]})
    assert conv.title == "t\ufffd"
    assert conv.metadata == {"k\ufffdey": "v\ufffdal", "nested": [{"x": "\ufffd"}]}
    m1 = u.conversations.add_message(conv.id, role="user", content=NUL_TEXT)
    m2 = u.conversations.add_message(conv.id, role="user", content=SURROGATE_TEXT)
    assert m1.content == "before\ufffdafter"
    assert m2.content == "lone \ufffd surrogate and \ufffd another"
    assert len(m2.content) == len(SURROGATE_TEXT)  # one replacement per bad code point
    history = u.conversations.history(conv.id)
    assert [m.content for m in history] == [m1.content, m2.content]


def test_non_json_metadata_values_follow_the_rule(client: llmbase.LLMBase) -> None:
    conv = client.conversations.create(
        metadata={
            "nan": float("nan"),
            "inf": float("inf"),
            "ninf": float("-inf"),
            "tuple": (1, 2),
            "set": {3},
            "bytes": b"ab",
            "uuid": uuid.UUID(int=1),
            5: "int key",
        }
    )
    assert conv.metadata == {
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "tuple": [1, 2],
        "set": [3],
        "bytes": "b'ab'",
        "uuid": "00000000-0000-0000-0000-000000000001",
        "5": "int key",
    }


def test_oversize_content_is_a_clear_error_and_writes_nothing(db_url: str) -> None:
    with llmbase.connect(db_url, migrate=False, max_content_chars=1000, max_metadata_bytes=200) as c:
        conv = c.conversations.create()
        c.conversations.add_message(conv.id, role="user", content="ok")
        with pytest.raises(PayloadTooLarge) as e:
            c.conversations.add_message(conv.id, role="user", content="x" * 1001)
        assert e.value.field == "content" and e.value.http_status == 413
        with pytest.raises(PayloadTooLarge) as e:
            c.conversations.add_message(conv.id, role="user", content="x", metadata={"blob": "y" * 500})
        assert e.value.field == "metadata"
        with pytest.raises(ValidationError) as e:
            c.conversations.create(metadata=["not", "an", "object"])  # type: ignore[arg-type]
        assert e.value.field == "metadata"
        got = c.conversations.get(conv.id)
        assert got.message_count == 1
        assert [m.content for m in c.conversations.history(conv.id)] == ["ok"]


def test_default_content_limit_is_one_million_characters(client: llmbase.LLMBase) -> None:
    conv = client.conversations.create()
    big = "é" * 1_000_000
    assert client.conversations.add_message(conv.id, role="assistant", content=big).content == big
    with pytest.raises(PayloadTooLarge):
        client.conversations.add_message(conv.id, role="assistant", content=big + "!")


def test_unknown_ids_are_not_found(client: llmbase.LLMBase) -> None:
    missing = uuid.uuid4()
    calls = [
        lambda: client.conversations.get(missing),
        lambda: client.conversations.rename(missing, "x"),
        lambda: client.conversations.archive(missing),
        lambda: client.conversations.delete(missing),
        lambda: client.conversations.history(missing),
        lambda: client.conversations.add_message(missing, role="user", content="x"),
        lambda: client.conversations.get_message(missing),
        lambda: client.feedback.summary(missing),
        lambda: client.feedback.conversation_summary(missing),
        lambda: client.users.get(missing),
        lambda: client.users.profile(missing),
        lambda: client.keys.revoke(missing),
        lambda: client.user("someone").feedback.rate(missing, rating="up"),
    ]
    for call in calls:
        with pytest.raises(NotFound) as e:
            call()
        assert str(missing) in str(e.value)
        assert e.value.http_status == 404


def test_unknown_tenant_slug_is_not_found(client: llmbase.LLMBase) -> None:
    with pytest.raises(NotFound):
        client.tenant("no-such-tenant").conversations.list()
    with pytest.raises(ValidationError):
        client.tenant("Bad Slug!").conversations.list()


def test_database_constraints_back_the_sdk_checks(db_url: str, client: llmbase.LLMBase) -> None:
    """Writers that bypass the SDK still meet the same rules (CHECK constraints)."""
    conv = client.conversations.create()
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT set_config('role', 'llmbase_app', true)")
        conn.execute("SELECT set_config('llmbase.tenant_id', '00000000-0000-0000-0000-000000000001', true)")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO llmbase.messages (conversation_id, role, content) VALUES (%s, 'robot', 'x')",
                (conv.id,),
            )
    assert client.conversations.get(conv.id).message_count == 0
