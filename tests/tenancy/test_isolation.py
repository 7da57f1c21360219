"""Tenant isolation, enforced by the database: the attack matrix over every tenant table
(SDK and raw SQL), fail-closed without a tenant, uniform NotFound, users inside a tenant,
catalog invariants, and pool safety under concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from typing import Any

import psycopg
import pytest
from _tenancy import (
    KNOWN_TABLES,
    Seeded,
    attack,
    dump_tenant,
    qualified,
    rows_as_json,
    scoped,
    sdk_scope,
    tenant_tables,
    tenant_views,
    visible,
)
from psycopg import sql

import llmbase
from llmbase.documents import search
from llmbase.documents.rows import Collection

APP = "llmbase_app"


# -- 1. the matrix -------------------------------------------------------------------------------
def test_matrix_knows_every_tenant_table(admin: psycopg.Connection[Any]) -> None:
    """A new tenant table fails here until the matrix knows how to populate and attack it."""
    assert tenant_tables(admin) == KNOWN_TABLES


def test_seeding_fills_every_tenant_table(admin: psycopg.Connection[Any], two: tuple[Seeded, Seeded]) -> None:
    tables = tenant_tables(admin)
    for s in two:
        for table, col in tables.items():
            assert rows_as_json(admin, table, col, s.tenant), f"{s.slug} has no rows in {table}"


def test_matrix_detects_leaks(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    """The harness itself: B attacking B must "leak" in every table B's scope may touch."""
    _, b = two
    tables = tenant_tables(admin)
    before = dump_tenant(admin, b.tenant, tables)
    out = attack(admin, raw, sdk_scope(b.tenant), b.tenant, tables)
    hit = {t for t in tables if any(f"{t}:" in leak or f" {t} " in leak for leak in out.leaks or [])}
    assert hit == set(tables) - {"auth_identities"}  # private: no grant even to its own tenant
    assert dump_tenant(admin, b.tenant, tables) == before  # every attempt was rolled back


def test_tenant_level_rollups_are_tenant_wide_only(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    """request_rollups_tenant has no user: a tenant-wide scope reads its own tenant's rows,
    a user scope none at all, another tenant none of them."""
    a, b = two
    own = visible(raw, sdk_scope(a.tenant), "request_rollups_tenant", "tenant_id, model")
    assert own == {(a.tenant, f"model-{a.slug}")}
    assert visible(raw, sdk_scope(a.tenant, a.u1), "request_rollups_tenant", "tenant_id") == set()
    assert visible(raw, sdk_scope(b.tenant), "request_rollups_tenant", "tenant_id") == {b.tenant}
    # The same for the iteration rollups.
    assert visible(raw, sdk_scope(a.tenant), "run_iteration_rollups", "tenant_id") == {a.tenant}
    assert visible(raw, sdk_scope(a.tenant, a.u1), "run_iteration_rollups", "tenant_id") == set()


@pytest.mark.parametrize("as_user", [False, True], ids=["tenant-wide", "user-scope"])
def test_raw_sql_cannot_touch_other_tenant(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded], as_user: bool
) -> None:
    a, b = two
    tables = tenant_tables(admin)
    before = dump_tenant(admin, b.tenant, tables)
    out = attack(admin, raw, sdk_scope(a.tenant, a.u1 if as_user else None), b.tenant, tables, own=a.tenant)
    assert out.leaks == []
    assert out.attempts > 100
    # Every forged insert was refused by a policy or a missing privilege.
    assert out.refused >= sum(len(v) for v in before.values())
    # Views too (security_invoker): nothing of B through them.
    with scoped(raw, sdk_scope(a.tenant, a.u1 if as_user else None)):
        for view in tenant_views(admin):
            q = sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(qualified(view))
            assert raw.execute(q, (b.tenant,)).fetchone() == (0,)
    assert dump_tenant(admin, b.tenant, tables) == before


def test_sdk_cannot_touch_other_tenant(
    client: llmbase.LLMBase, fresh_admin: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    a, b = two
    tables = tenant_tables(fresh_admin)
    before = dump_tenant(fresh_admin, b.tenant, tables)
    kb_b = run_plan(client.tenant(b.tenant), search.get_collection, b.docs.kb)
    leaks: list[str] = []
    for who, c in (("tenant", client.tenant(a.tenant)), ("user", client.tenant(a.tenant).user(a.u1))):
        attempts = _sdk_attempts(c, a, b, kb_b)
        for name, fn in attempts:
            try:
                result = fn()
            except llmbase.NotFound:
                continue
            except (llmbase.PermissionDenied, llmbase.TenantMissing):
                continue
            if result is None or result == [] or result == 0:
                continue
            leaks.append(f"{who}: {name} -> {result!r}")
        # Listings show only A's own rows.
        for conv in c.conversations.list(archived=None, limit=1000):
            if conv.tenant_id != a.tenant:
                leaks.append(f"{who}: conversations.list shows {conv.id}")
        if who == "tenant":
            for u in c.users.list(limit=1000):
                if u.tenant_id != a.tenant:
                    leaks.append(f"{who}: users.list shows {u.id}")
            for k in c.keys.list(include_revoked=True):
                if k.tenant_id != a.tenant:
                    leaks.append(f"{who}: keys.list shows {k.id}")
            assert c.settings.get().settings.default_model == "model-acme"
            assert c.conversations.get(a.conv1).tenant_id == a.tenant
    assert leaks == []
    assert dump_tenant(fresh_admin, b.tenant, tables) == before


def run_plan(c: llmbase.LLMBase, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a document-store plan in the client's scope (as its store binding will)."""
    return c._core.run(fn, *args, **kwargs)


def _sdk_attempts(c: llmbase.LLMBase, a: Seeded, b: Seeded, kb_b: Collection) -> list[tuple[str, Any]]:
    """Every SDK operation aimed at one of B's objects from A's scope."""
    conv, msg, user, key = b.conv1, b.reply1, b.u1, b.key
    docs = [("private", b.docs.doc1), ("shared", b.docs.shared), ("public", b.docs.public)]
    return [
        ("conversations.get", lambda: c.conversations.get(conv)),
        ("conversations.get shared", lambda: c.conversations.get(b.shared)),
        ("conversations.history", lambda: c.conversations.history(conv)),
        ("conversations.get_message", lambda: c.conversations.get_message(msg)),
        ("conversations.get_message shared", lambda: c.conversations.get_message(b.shared_msg)),
        ("conversations.rename", lambda: c.conversations.rename(conv, "pwned")),
        ("conversations.update", lambda: c.conversations.update(conv, metadata={"x": 1})),
        ("conversations.archive", lambda: c.conversations.archive(b.shared)),
        ("conversations.complete", lambda: c.conversations.complete(conv)),
        ("conversations.add_message", lambda: c.conversations.add_message(conv, role="user", content="x")),
        (
            "conversations.add_message shared",
            lambda: c.conversations.add_message(b.shared, role="assistant", content="x"),
        ),
        ("conversations.delete", lambda: c.conversations.delete(conv)),
        ("conversations.create as B's user", lambda: c.conversations.create(user_id=user)),
        ("feedback.rate", lambda: c.feedback.rate(msg, rating="down", user_id=a.u1)),
        ("feedback.rate as B's user", lambda: c.feedback.rate(msg, rating="down", user_id=user)),
        ("feedback.get", lambda: c.feedback.get(msg, user_id=user)),
        ("feedback.remove", lambda: c.feedback.remove(msg, user_id=user)),
        ("feedback.summary", lambda: c.feedback.summary(msg)),
        ("feedback.conversation_summary", lambda: c.feedback.conversation_summary(conv)),
        ("users.get", lambda: c.users.get(user)),
        ("users.get by external id", lambda: c.users.get("globex-u1")),
        ("users.update", lambda: c.users.update(user, display_name="pwned")),
        ("users.delete", lambda: c.users.delete(user)),
        ("users.profile", lambda: c.users.profile(user)),
        ("users.set_preferences", lambda: c.users.set_preferences({"x": 1}, user_id=user)),
        ("keys.revoke", lambda: c.keys.revoke(key)),
        ("keys.create for B's user", lambda: c.keys.create("k", user_id=user)),
        # The document store's plans (reads; B's public document too: the SDK stays in its tenant).
        *[(f"documents.get {name}", lambda d=d: run_plan(c, search.get_document, d)) for name, d in docs],
        *[
            (f"documents.chunks {name}", lambda d=d: run_plan(c, search.document_chunks, d))
            for name, d in docs
        ],
        ("collections.get", lambda: run_plan(c, search.get_collection, b.docs.kb)),
        ("collections.get notes", lambda: run_plan(c, search.get_collection, b.docs.notes)),
        ("chunks.get", lambda: run_plan(c, search.get_chunks, kb_b, [b.docs.public_chunk, b.docs.chunk1])),
        ("documents.list", lambda: list(run_plan(c, search.list_documents, kb_b))),
        ("search", lambda: run_plan(c, search.search, kb_b, vector=[0.0, 1.0, 0.0]).hits),
        ("search text", lambda: run_plan(c, search.search, kb_b, text="public faq", mode="text").hits),
    ]


# -- 2. no tenant: fail closed ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tenant", "user"),
    [(None, None), ("not-a-uuid", None), (None, "user"), ("", "user")],
    ids=["nothing", "garbage-tenant", "user-only", "empty-tenant"],
)
def test_no_tenant_sees_nothing_and_writes_nothing(
    admin: psycopg.Connection[Any],
    raw: psycopg.Connection[Any],
    two: tuple[Seeded, Seeded],
    tenant: str | None,
    user: str | None,
) -> None:
    a, b = two
    tables = tenant_tables(admin)
    before = {s.tenant: dump_tenant(admin, s.tenant, tables) for s in two}
    enter = sdk_scope(tenant, a.u1 if user else None)
    for name in [*tables, *tenant_views(admin)]:
        # No rows (or no privilege at all, for the private auth map).
        got = visible(raw, enter, name, "1", private=True)
        assert got in (set(), None), f"{name} shows rows without a tenant"
    assert visible(raw, enter, "auth_identities", "1") is None
    for victim in (a, b):
        out = attack(admin, raw, enter, victim.tenant, tables)
        assert out.leaks == []
    assert {s.tenant: dump_tenant(admin, s.tenant, tables) for s in two} == before


def test_sdk_default_inserts_fail_without_tenant(
    raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    """Inserting with the column defaults (tenant from context) fails when no tenant is set."""
    with scoped(raw, sdk_scope(None)), pytest.raises(psycopg.errors.InsufficientPrivilege):
        raw.execute("INSERT INTO llmbase.conversations (title) VALUES ('orphan')")
    with scoped(raw, sdk_scope(None)), pytest.raises(psycopg.errors.InsufficientPrivilege):
        raw.execute("INSERT INTO llmbase.users (external_id) VALUES ('orphan')")


# -- 3. NotFound looks the same for another tenant's object and a missing one --------------------------
def test_not_found_is_uniform(client: llmbase.LLMBase, two: tuple[Seeded, Seeded]) -> None:
    a, b = two
    c = client.tenant(a.tenant)
    cases = [
        (lambda i: c.conversations.get(i), b.conv1),
        (lambda i: c.conversations.get(i), b.shared),
        (lambda i: c.conversations.history(i), b.conv1),
        (lambda i: c.conversations.get_message(i), b.msg1),
        (lambda i: c.feedback.summary(i), b.reply1),
        (lambda i: c.users.get(i), b.u1),
        (lambda i: c.users.profile(i), b.u1),
        (lambda i: c.keys.revoke(i), b.key),
        (lambda i: run_plan(c, search.get_document, i), b.docs.doc1),
        (lambda i: run_plan(c, search.get_document, i), b.docs.public),
        (lambda i: run_plan(c, search.get_collection, i), b.docs.kb),
    ]
    for fn, foreign in cases:
        missing = uuid.uuid4()
        with pytest.raises(llmbase.NotFound) as theirs:
            fn(foreign)
        with pytest.raises(llmbase.NotFound) as nobody:
            fn(missing)
        assert type(theirs.value) is type(nobody.value)
        assert str(theirs.value).replace(str(foreign), "<id>") == str(nobody.value).replace(
            str(missing), "<id>"
        )
        assert theirs.value.kind == nobody.value.kind
        assert str(foreign) in str(theirs.value)


# -- 4. users inside one tenant ------------------------------------------------------------------------
def test_user_cannot_read_another_users_private_conversation(
    client: llmbase.LLMBase, fresh_admin: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    a, _ = two
    u1 = client.tenant(a.tenant).user(a.u1)
    for fn in (
        lambda: u1.conversations.get(a.conv2),
        lambda: u1.conversations.history(a.conv2),
        lambda: u1.conversations.get_message(a.msg2),
        lambda: u1.conversations.add_message(a.conv2, role="user", content="intrude"),
        lambda: u1.conversations.rename(a.conv2, "mine now"),
        lambda: u1.conversations.delete(a.conv2),
        lambda: u1.feedback.summary(a.msg2),
        lambda: u1.feedback.conversation_summary(a.conv2),
        lambda: u1.feedback.rate(a.msg2, rating="down"),
    ):
        with pytest.raises(llmbase.NotFound):
            fn()
    listed = {conv.id for conv in u1.conversations.list(archived=None)}
    assert listed == {a.conv1, a.shared}
    # Shared conversations are readable (and writable by message) by every user.
    assert u1.conversations.get(a.shared).user_id is None
    assert [m.id for m in u1.conversations.history(a.shared)] == [a.shared_msg]
    u1.conversations.add_message(a.shared, role="user", content="me too")
    assert fresh_admin.execute(
        "SELECT title, message_count FROM llmbase.conversations WHERE tenant_id = %s AND id = %s",
        (a.tenant, a.conv2),
    ).fetchone() == ("acme u2 private", 1)


def test_user_cannot_rate_as_someone_else(
    client: llmbase.LLMBase, fresh_admin: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    a, _ = two
    u1 = client.tenant(a.tenant).user(a.u1)
    for mid in (a.shared_msg, a.reply1):
        with pytest.raises((llmbase.NotFound, llmbase.PermissionDenied)):
            u1.feedback.rate(mid, rating="down", user_id=a.u2)
    assert fresh_admin.execute(
        "SELECT count(*) FROM llmbase.feedback WHERE tenant_id = %s AND user_id = %s AND message_id IN (%s, %s)",
        (a.tenant, a.u2, a.shared_msg, a.reply1),
    ).fetchone() == (0,)
    # Nor read or remove another user's rating.
    with pytest.raises((llmbase.NotFound, llmbase.PermissionDenied)):
        u1.feedback.remove(a.msg2, user_id=a.u2)
    assert u1.feedback.get(a.msg2, user_id=a.u2) is None


def test_feedback_cannot_reach_a_private_message_through_a_visible_conversation(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    """Feedback names a message and its conversation: u1 may not pair u2's private message
    with a conversation u1 can see (that would write to, and then read, u2's summary)."""
    a, _ = two
    before = dump_tenant(admin, a.tenant, {"feedback": "tenant_id", "feedback_summary": "tenant_id"})
    for conv in (a.shared, a.conv1):
        with scoped(raw, sdk_scope(a.tenant, a.u1)), pytest.raises(psycopg.errors.InsufficientPrivilege):
            raw.execute(
                "INSERT INTO llmbase.feedback (message_id, conversation_id, user_id, rating)"
                " VALUES (%s, %s, %s, 1)",
                (a.msg2, conv, a.u1),
            )
    # Nor move an existing rating of u1's onto u2's message.
    with scoped(raw, sdk_scope(a.tenant, a.u1)):
        try:
            with raw.transaction():
                cur = raw.execute(
                    "UPDATE llmbase.feedback SET message_id = %s WHERE message_id = %s",
                    (a.msg2, a.shared_msg),
                )
                moved = cur.rowcount
        except psycopg.errors.InsufficientPrivilege:
            moved = 0
        assert moved == 0
    assert dump_tenant(admin, a.tenant, {"feedback": "tenant_id", "feedback_summary": "tenant_id"}) == before


def test_message_insert_does_not_reveal_foreign_conversations(
    raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    """Adding a message to someone else's conversation fails exactly like adding to a
    missing one (no existence oracle across tenants or users)."""
    a, b = two
    errors = []
    for tenant, conv in (
        (b.tenant, b.conv1),
        (b.tenant, uuid.uuid4()),
        (a.tenant, a.conv2),
        (a.tenant, uuid.uuid4()),
    ):
        with scoped(raw, sdk_scope(a.tenant, a.u1)), pytest.raises(psycopg.Error) as err:
            raw.execute(
                "INSERT INTO llmbase.messages (tenant_id, conversation_id, role, content)"
                " VALUES (%s, %s, 'assistant', 'probe')",
                (tenant, conv),
            )
        errors.append((err.value.sqlstate, str(err.value).replace(str(conv), "<id>")))
    assert len(set(errors)) == 1, errors


# -- 5. catalog invariants ------------------------------------------------------------------------------
#: Not tenant data: Alembic's version table (one row, the revision). No client role holds
#: any privilege on it (asserted below); RLS on it would lock out the migrator.
NON_TENANT_TABLES = {"alembic_version"}


def test_every_table_has_forced_rls(admin: psycopg.Connection[Any]) -> None:
    rows = admin.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'llmbase' AND c.relkind IN ('r', 'p')"
        " AND NOT (c.relrowsecurity AND c.relforcerowsecurity) ORDER BY 1"
    ).fetchall()
    assert {r[0] for r in rows} <= NON_TENANT_TABLES
    for table in NON_TENANT_TABLES:
        for role in (APP, "anon", "authenticated"):
            assert admin.execute(
                "SELECT has_table_privilege(%s, %s, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE')",
                (role, f"llmbase.{table}"),
            ).fetchone() == (False,)


def test_app_role_is_powerless(admin: psycopg.Connection[Any]) -> None:
    assert admin.execute(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles WHERE rolname = %s",
        (APP,),
    ).fetchone() == (False, False, False, False, False)
    owned = admin.execute(
        "SELECT 'class ' || relname FROM pg_class WHERE relowner = %s::regrole"
        " UNION ALL SELECT 'proc ' || proname FROM pg_proc WHERE proowner = %s::regrole"
        " UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = %s::regrole"
        " UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typowner = %s::regrole",
        (APP, APP, APP, APP),
    ).fetchall()
    assert owned == []
    bad = admin.execute(
        "SELECT c.relname, p.priv FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,"
        " unnest(ARRAY['TRUNCATE', 'TRIGGER', 'REFERENCES']) p(priv)"
        " WHERE n.nspname = 'llmbase' AND c.relkind IN ('r', 'p', 'v', 'm')"
        " AND has_table_privilege(%s, c.oid, p.priv)",
        (APP,),
    ).fetchall()
    assert bad == []
    for schema in ("llmbase", "public"):
        assert admin.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')", (APP, schema)).fetchone() == (
            False,
        )
    # Nor is it a member of a role that could bypass any of this.
    assert admin.execute(
        "SELECT count(*) FROM pg_roles r WHERE pg_has_role(%s, r.oid, 'MEMBER') AND r.rolname <> %s"
        " AND (r.rolsuper OR r.rolbypassrls OR r.rolname IN ('llmbase_admin', 'pg_write_all_data',"
        " 'pg_read_all_data'))",
        (APP, APP),
    ).fetchone() == (0,)


def test_security_definer_functions_pin_search_path(admin: psycopg.Connection[Any]) -> None:
    rows = admin.execute(
        "SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'llmbase' AND p.prosecdef"
    ).fetchall()
    assert rows, "expected SECURITY DEFINER functions (context, triggers)"
    unpinned = [name for name, cfg in rows if not any(c.startswith("search_path=") for c in cfg or [])]
    assert unpinned == []
    # The pinned path must not let a caller's objects shadow the catalog.
    for name, cfg in rows:
        path = next(c for c in cfg if c.startswith("search_path="))
        assert path in ("search_path=pg_catalog", "search_path=pg_catalog, pg_temp", 'search_path=""'), (
            name,
            path,
        )


def test_security_definer_functions_are_not_callable_by_clients(admin: psycopg.Connection[Any]) -> None:
    """Client roles may call only the context readers (the policies need them); the rest are
    triggers (not callable directly) or granted to llmbase_app alone."""
    readers = {"llmbase.current_tenant_id()", "llmbase.current_user_id()"}
    rows = admin.execute(
        "SELECT p.oid::regprocedure::text, p.prorettype = 'trigger'::regtype,"
        " has_function_privilege('anon', p.oid, 'EXECUTE'), has_function_privilege('authenticated', p.oid, 'EXECUTE')"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'llmbase' AND p.prosecdef"
    ).fetchall()
    exposed = [name for name, trig, anon, auth in rows if not trig and (anon or auth) and name not in readers]
    assert exposed == []


def test_views_are_security_invoker(admin: psycopg.Connection[Any]) -> None:
    rows = admin.execute(
        "SELECT c.relname, coalesce(c.reloptions, '{}') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'llmbase' AND c.relkind = 'v'"
    ).fetchall()
    assert rows
    assert [
        name for name, opts in rows if not {"security_invoker=true", "security_invoker=on"} & set(opts)
    ] == []
    assert admin.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'llmbase' AND c.relkind = 'm'"
    ).fetchone() == (0,), "materialized views cannot have RLS: keep tenant data out of them"


#: Unique keys on tenant tables that are global on purpose, each with its reason.
GLOBAL_UNIQUE = {
    # API keys authenticate before any tenant is known (the key carries only its id), so the
    # id must resolve on its own; ids are random UUIDv7 minted by llmbase, never chosen by a tenant.
    ("api_keys", ("id",)),
    # A slug names a tenant: client.tenant("acme") resolves it before a tenant scope exists.
    ("tenants", ("slug",)),
    # A collection's id is a chunks partition's list value, and its partition_name the
    # partition's table name: both are global in the schema. Both are minted by
    # llmbase.create_collection (uuid7 and its hex), never chosen by a tenant.
    ("collections", ("id",)),
    ("collections", ("partition_name",)),
    # Audit entries are minted by llmbase (uuid7 default, never chosen by a tenant), and an
    # operator-level entry has no tenant (tenant_id NULL), so the key cannot include it.
    ("audit_log", ("id",)),
}
#: Indexes on tenant tables whose first column is not the tenant, each with its reason.
NOT_TENANT_LEADING = {
    # The private auth map is looked up by the JWT subject before the tenant is known
    # (current_tenant_id derives the tenant from it); only definer functions read it.
    ("auth_identities", ("auth_id", "tenant_id")),
}


def _indexes(admin: psycopg.Connection[Any]) -> list[tuple[str, tuple[str, ...], bool]]:
    rows = admin.execute(
        "SELECT c.relname, array_agg(a.attname ORDER BY k.ord), i.indisunique"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true"
        " LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE n.nspname = 'llmbase' AND k.ord <= i.indnkeyatts"
        " GROUP BY i.indexrelid, c.relname, i.indisunique"
    ).fetchall()
    return [(t, tuple(c if c is not None else "<expr>" for c in cols), u) for t, cols, u in rows]


def test_unique_keys_are_tenant_scoped(admin: psycopg.Connection[Any]) -> None:
    tables = tenant_tables(admin)
    bad = [
        (t, cols)
        for t, cols, unique in _indexes(admin)
        if unique and t in tables and tables[t] not in cols and (t, cols) not in GLOBAL_UNIQUE
    ]
    assert bad == []
    # The documented exceptions exist (or this list is stale).
    assert {(t, cols) for t, cols, u in _indexes(admin) if u} >= GLOBAL_UNIQUE


def test_composite_indexes_lead_with_tenant(admin: psycopg.Connection[Any]) -> None:
    tables = tenant_tables(admin)
    bad = [
        (t, cols)
        for t, cols, _ in _indexes(admin)
        if t in tables and len(cols) > 1 and cols[0] != tables[t] and (t, cols) not in NOT_TENANT_LEADING
    ]
    assert bad == []
    assert {(t, cols) for t, cols, _ in _indexes(admin)} >= NOT_TENANT_LEADING


def test_no_grants_to_public(admin: psycopg.Connection[Any]) -> None:
    rows = admin.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,"
        " aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) acl"
        " WHERE n.nspname = 'llmbase' AND acl.grantee = 0"
    ).fetchall()
    assert rows == []
    assert admin.execute("SELECT has_schema_privilege('public', 'llmbase', 'USAGE')").fetchone() == (False,)


# -- 6. pool safety ----------------------------------------------------------------------------------
def test_pool_never_leaks_tenant_between_threads(db_url: str, fresh_admin: psycopg.Connection[Any]) -> None:
    threads_n, tenants_n, rounds = 50, 20, 6
    setup = llmbase.connect(db_url, migrate=False)
    try:
        tids = [setup.admin().tenants.create(f"pool-{i:02d}").id for i in range(tenants_n)]
    finally:
        setup.close()
    pooled = llmbase.connect(db_url, migrate=False, pool_max_size=10)
    leaks: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads_n)

    def work(n: int) -> None:
        try:
            start.wait()
            for r in range(rounds):
                tid = tids[(n + r) % tenants_n]
                c = pooled.tenant(tid)
                conv = c.conversations.create(title=f"t{n}r{r}")
                if r % 2:
                    # A transaction that fails inside the database, then one that fails in Python.
                    with pytest.raises(llmbase.NotFound):
                        c.conversations.add_message(uuid.uuid4(), role="user", content="x")
                    with pytest.raises(ZeroDivisionError):
                        fail_in_python(pooled, c.scope())
                page = c.conversations.list(limit=1000)
                found = [x for x in page if x.tenant_id != tid]
                ids = {x.id for x in page}
                with lock:
                    leaks.extend(f"thread {n}: {x.id} of {x.tenant_id} seen as {tid}" for x in found)
                    if conv.id not in ids:
                        leaks.append(f"thread {n}: own conversation {conv.id} missing")
        except BaseException as exc:  # reported below
            with lock:
                failures.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert failures == []
        assert leaks == []
        # Nothing of any scope survives on any pooled connection (hold them all at once).
        pool = pooled.database.pool()
        assert pool.get_stats()["pool_size"] > 1
        with contextlib.ExitStack() as stack:
            conns = [stack.enter_context(pool.connection()) for _ in range(pool.get_stats()["pool_size"])]
            for conn in conns:
                row = conn.execute(
                    "SELECT current_setting('llmbase.tenant_id', true), current_setting('llmbase.user_id', true),"
                    " current_user::text, current_setting('role'), llmbase.current_tenant_id()"
                ).fetchone()
                assert row is not None
                assert (row[0] or "", row[1] or "", row[4]) == ("", "", None)
                assert row[2] != APP
                assert row[3] == "none"
    finally:
        pooled.close()
    per_tenant = fresh_admin.execute(
        "SELECT tenant_id, count(*) FROM llmbase.conversations WHERE tenant_id = ANY(%s) GROUP BY 1", (tids,)
    ).fetchall()
    assert sum(n for _, n in per_tenant) == threads_n * rounds


def fail_in_python(c: llmbase.LLMBase, scope: llmbase.Scope) -> None:
    """A scoped transaction that did some work, then raised in application code."""
    with c.database.transaction(scope) as conn:
        conn.execute("INSERT INTO llmbase.conversations (title) VALUES ('rolled back')")
        _ = 1 / 0


def fail_in_sql(c: llmbase.LLMBase, scope: llmbase.Scope) -> None:
    with c.database.transaction(scope) as conn:
        conn.execute("SELECT 1/0")


def test_scope_does_not_outlive_its_transaction(client: llmbase.LLMBase, two: tuple[Seeded, Seeded]) -> None:
    a, _ = two
    db = client.database
    for scope in (llmbase.Scope(a.tenant), llmbase.Scope(a.tenant, a.u1)):
        with db.transaction(scope) as conn:
            assert conn.execute("SELECT current_user::text, llmbase.current_tenant_id()").fetchone() == (
                APP,
                a.tenant,
            )
        with pytest.raises(psycopg.errors.DivisionByZero):
            fail_in_sql(client, scope)
        with db.pool().connection() as conn:
            row = conn.execute(
                "SELECT current_setting('llmbase.tenant_id', true), current_setting('llmbase.user_id', true),"
                " current_user::text, llmbase.current_tenant_id()"
            ).fetchone()
            assert row is not None
            assert (row[0] or "", row[1] or "", row[3]) == ("", "", None)
            assert row[2] != APP
            conn.rollback()


async def test_async_pool_never_leaks_tenant(db_url: str, two: tuple[Seeded, Seeded]) -> None:
    """The async client's pool: concurrent tasks for different tenants, interleaved."""
    a, b = two
    aclient = llmbase.connect_async(db_url, migrate=False, pool_max_size=4)
    leaks: list[str] = []

    async def work(n: int) -> None:
        s = (a, b)[n % 2]
        c = aclient.tenant(s.tenant)
        conv = await c.conversations.create(title=f"task {n}")
        if n % 3 == 0:
            with pytest.raises(llmbase.NotFound):
                await c.conversations.get((b, a)[n % 2].conv1)
        page = await c.conversations.list(limit=1000, archived=None)
        leaks.extend(f"task {n}: {x.id} of {x.tenant_id}" for x in page if x.tenant_id != s.tenant)
        if conv.id not in {x.id for x in page}:
            leaks.append(f"task {n}: own conversation missing")

    try:
        await asyncio.gather(*(work(n) for n in range(40)))
        pool = await aclient.database.apool()
        async with pool.connection() as conn:
            row = await (
                await conn.execute("SELECT current_user::text, llmbase.current_tenant_id()")
            ).fetchone()
            assert row is not None
            assert row[0] != APP
            assert row[1] is None
    finally:
        await aclient.aclose()
    assert leaks == []
