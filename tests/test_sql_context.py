"""The seeds' context functions for SQL clients: transaction-local, fail closed when cleared."""

from __future__ import annotations

import psycopg
import pytest

import llmbase


def test_context_functions_scope_a_sql_session(client: llmbase.LLMBase, db_url: str) -> None:
    client.tenants.create("guild-a")
    client.tenants.create("guild-b")
    a, b = client.tenant("guild-a"), client.tenant("guild-b")
    alice = a.user("alice")
    mine = alice.conversations.create(title="alice's")
    a.user("carl").conversations.create(title="carl's")
    shared = a.conversations.create(title="shared", shared=True)
    b.user("bob").conversations.create(title="bob's")
    ta, uid = a.scope().tenant_id, alice.scope().user_id

    with psycopg.connect(db_url) as conn:
        conn.execute("SET LOCAL ROLE llmbase_app")
        assert conn.execute("SELECT count(*) FROM llmbase.conversations").fetchone() == (0,)
        conn.execute("SELECT llmbase.set_tenant_context(%s)", (ta,))
        titles = {r[0] for r in conn.execute("SELECT title FROM llmbase.conversations")}
        assert titles == {"alice's", "carl's", "shared"}
        conn.execute("SELECT llmbase.set_user_context(%s)", (uid,))
        rows = {r[0] for r in conn.execute("SELECT id FROM llmbase.conversations")}
        assert rows == {mine.id, shared.id}
        conn.execute("SELECT llmbase.clear_context()")
        assert conn.execute("SELECT count(*) FROM llmbase.conversations").fetchone() == (0,)
        conn.rollback()

    # Transaction-local: nothing survives into the next transaction on the same connection.
    with psycopg.connect(db_url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT llmbase.set_tenant_context(%s)", (ta,))
        assert conn.execute("SELECT current_setting('llmbase.tenant_id', true)").fetchone() in (
            ("",),
            (None,),
        )


def test_set_user_context_needs_a_tenant(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("SET LOCAL ROLE llmbase_app")
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("SELECT llmbase.set_user_context('00000000-0000-0000-0000-000000000001')")


def test_app_role_cannot_enter_admin_scope(client: llmbase.LLMBase, db_url: str) -> None:
    client.tenants.create("other")
    client.tenant("other").conversations.create(title="secret")
    with psycopg.connect(db_url) as conn:
        conn.execute("SET LOCAL ROLE llmbase_app")
        conn.execute("SELECT set_config('llmbase.admin', 'on', true)")
        assert conn.execute("SELECT count(*) FROM llmbase.conversations").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM llmbase.tenants").fetchone() == (0,)
