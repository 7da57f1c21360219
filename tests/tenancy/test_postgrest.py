"""PostgREST / Supabase clients, simulated exactly: per request a transaction that switches
to the JWT's role and sets `request.jwt.claims`. The claims are then the only source of
tenant and user; the roles' grants and the policies must hold without the SDK."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest
from _tenancy import (
    Seeded,
    attack,
    dump_tenant,
    postgrest_scope,
    qualified,
    scoped,
    sdk_scope,
    tenant_tables,
    tenant_views,
    visible,
)
from psycopg import sql

import llmbase

#: Columns that name a row of each table (for "what can this role see").
IDS: dict[str, str] = {
    "tenants": "id",
    "users": "id",
    "auth_identities": "auth_id",
    "user_profiles": "user_id",
    "tenant_settings": "tenant_id",
    "api_keys": "id",
    "conversations": "id",
    "messages": "id",
    "feedback": "id",
    "feedback_summary": "message_id",
    "conversation_feedback": "conversation_id",
    "requests": "id",
    "request_rollups": "user_id",
    "request_rollups_tenant": "model",
    "runs": "id",
    "run_iterations": "run_id",
    "run_tool_calls": "id",
    "model_prices": "model",
    "ingest_dead_letters": "id",
    "run_iteration_rollups": "iteration",
    "collections": "id",
    "documents": "id",
    "chunks": "id",
    "retrievals": "id",
    "retrieval_results": "retrieval_id",
    "message_sources": "retrieval_id",
    "document_feedback": "document_id",
    "audit_log": "id",
    "rate_limits": "id",
    "rate_limit_counters": "subject_key",
    "budgets": "id",
    "budget_periods": "subject_key",
    "budget_reservations": "id",
    "cache_entries": "id",
}


def jwt(sub: str, tenant: UUID | None = None, *, app_metadata: bool = False) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": sub, "role": "authenticated", "aud": "authenticated"}
    if tenant is not None and app_metadata:
        claims["app_metadata"] = {"provider": "email", "tenant_id": str(tenant)}
    elif tenant is not None:
        claims["tenant_id"] = str(tenant)
    return claims


def everything(admin: psycopg.Connection[Any]) -> list[str]:
    names = [*tenant_tables(admin), *tenant_views(admin)]
    assert set(names) == set(IDS), "a new table or view: say which column names its rows in IDS"
    return names


def expected_for_u1(admin: psycopg.Connection[Any], s: Seeded) -> dict[str, set[Any] | None]:
    """What u1 of tenant `s` may see: its tenant, its own user row (not the other users'
    emails and auth ids), its own and the shared rows."""

    def ids(q: str, *params: Any) -> set[Any]:
        return {r[0] for r in admin.execute(q, params).fetchall()}

    convs = {s.conv1, s.shared}
    runs = ids("SELECT id FROM llmbase.runs WHERE tenant_id = %s AND user_id = %s", s.tenant, s.u1)
    public = only_public(admin)
    d = s.docs
    return {
        "tenants": {s.tenant},
        "users": {s.u1},
        "auth_identities": None,
        "user_profiles": {s.u1},
        "tenant_settings": {s.tenant},
        "api_keys": None,
        "conversations": convs,
        "messages": ids("SELECT id FROM llmbase.messages WHERE conversation_id = ANY(%s)", list(convs)),
        "feedback": ids("SELECT id FROM llmbase.feedback WHERE user_id = %s", s.u1),
        "feedback_summary": ids(
            "SELECT message_id FROM llmbase.feedback_summary WHERE conversation_id = ANY(%s)", list(convs)
        ),
        "conversation_feedback": ids(
            "SELECT conversation_id FROM llmbase.feedback_summary WHERE conversation_id = ANY(%s)",
            list(convs),
        ),
        # The request log: a user reads their own calls, rollups and runs; no grant on
        # price overrides and dead letters (tenant-wide, backend matters).
        "requests": ids(
            "SELECT id FROM llmbase.requests WHERE tenant_id = %s AND user_id = %s", s.tenant, s.u1
        ),
        "request_rollups": {s.u1},
        "request_rollups_tenant": set(),  # tenant-wide scope only: a JWT never is
        "runs": runs,
        "run_iterations": runs,
        "run_tool_calls": ids("SELECT id FROM llmbase.run_tool_calls WHERE run_id = ANY(%s)", list(runs)),
        "model_prices": None,
        "ingest_dead_letters": None,
        "run_iteration_rollups": set(),  # tenant-wide scope only: a JWT never is
        # The document store: own, shared (user NULL) and every tenant's public documents;
        # the tenant's collections (the public ones of other tenants too); own retrievals.
        "collections": {d.kb, d.notes} | public["collections"],
        "documents": {d.doc1, d.shared, d.notes_doc} | public["documents"],
        "chunks": {d.chunk1, d.shared_chunk, d.notes_chunk} | public["chunks"],
        "retrievals": {d.retrieval1},
        "retrieval_results": {d.retrieval1},
        "message_sources": {d.retrieval1},
        "document_feedback": {d.doc1, d.shared},
        # Limits and budgets: the tenant's and the user's own definitions; usage rows are
        # not granted to PostgREST users. The cache is the backend's: no grant.
        "rate_limits": ids(
            "SELECT id FROM llmbase.rate_limits WHERE tenant_id = %s AND (user_id IS NULL OR user_id = %s)",
            s.tenant,
            s.u1,
        ),
        "rate_limit_counters": None,
        "budgets": ids(
            "SELECT id FROM llmbase.budgets WHERE tenant_id = %s AND (user_id IS NULL OR user_id = %s)",
            s.tenant,
            s.u1,
        ),
        "budget_periods": None,
        "budget_reservations": None,
        "cache_entries": None,
        # The audit log: a user reads the entries of their own actions.
        "audit_log": ids(
            "SELECT id FROM llmbase.audit_log WHERE tenant_id = %s AND actor_user_id = %s", s.tenant, s.u1
        ),
    }


def seen(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], enter: Any
) -> dict[str, set[Any] | None]:
    return {name: visible(raw, enter, name, IDS[name]) for name in everything(admin)}


def only_public(admin: psycopg.Connection[Any]) -> dict[str, set[Any]]:
    """No rows anywhere but the public documents of every tenant, their chunks and the
    collections holding them (seed 003's anonymous readers read those)."""

    def ids(q: str) -> set[Any]:
        return {r[0] for r in admin.execute(q).fetchall()}

    out: dict[str, set[Any]] = {name: set() for name in everything(admin)}
    out["documents"] = ids("SELECT id FROM llmbase.documents WHERE is_public")
    out["chunks"] = ids("SELECT id FROM llmbase.chunks WHERE is_public")
    out["collections"] = ids("SELECT DISTINCT collection_id FROM llmbase.documents WHERE is_public")
    assert all(out[t] for t in ("documents", "chunks", "collections")), "seeding makes public documents"
    return out


def _blank_denied(got: dict[str, set[Any] | None]) -> dict[str, set[Any] | None]:
    return {k: (set() if v is None else v) for k, v in got.items()}


# -- claims select tenant and user --------------------------------------------------------------------
@pytest.mark.parametrize("how", ["tenant_id", "app_metadata", "derived"])
def test_authenticated_sees_own_and_shared_rows(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded], how: str
) -> None:
    a, b = two
    claims = jwt(a.auth1) if how == "derived" else jwt(a.auth1, a.tenant, app_metadata=how == "app_metadata")
    enter = postgrest_scope(claims)
    assert seen(admin, raw, enter) == expected_for_u1(admin, a)
    with scoped(raw, enter):
        assert raw.execute(
            "SELECT llmbase.current_tenant_id(), llmbase.current_user_id(), llmbase.tenant_wide()"
        ).fetchone() == (a.tenant, a.u1, False)
    # u2 of the same tenant sees its own conversation, not u1's.
    got = visible(raw, postgrest_scope(jwt(a.auth2, a.tenant)), "conversations")
    assert got == {a.conv2, a.shared}
    # Nobody sees B's private rows, whatever the claim style.
    assert b.conv1 not in (visible(raw, enter, "conversations") or set())


def test_ambiguous_identity_without_tenant_claim_sees_nothing(
    client: llmbase.LLMBase,
    fresh_admin: psycopg.Connection[Any],
    fresh_raw: psycopg.Connection[Any],
    two: tuple[Seeded, Seeded],
) -> None:
    """A subject with users in two tenants must name the tenant; without a claim: nothing
    (but what is public to everyone)."""
    a, b = two
    client.tenant(b.tenant).users.create("also-a-u1", auth_id=a.auth1)
    assert _blank_denied(seen(fresh_admin, fresh_raw, postgrest_scope(jwt(a.auth1)))) == only_public(
        fresh_admin
    )
    # Naming either tenant works.
    assert visible(fresh_raw, postgrest_scope(jwt(a.auth1, b.tenant)), "conversations") == {b.shared}
    assert visible(fresh_raw, postgrest_scope(jwt(a.auth1, a.tenant)), "conversations") == {a.conv1, a.shared}


def test_tenant_claim_without_membership_sees_nothing(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    """A (forged or stale) tenant claim for a tenant where the subject has no user grants
    nothing: no user-owned rows, no shared rows, not even the tenant's own rows (only what
    is public to everyone)."""
    a, b = two
    for claims in (
        jwt(a.auth1, b.tenant),
        jwt(a.auth1, b.tenant, app_metadata=True),
        jwt("unknown-subject", b.tenant),
        {"role": "authenticated", "tenant_id": str(b.tenant)},  # no sub at all
    ):
        enter = postgrest_scope(claims)
        assert _blank_denied(seen(admin, raw, enter)) == only_public(admin), claims
        with scoped(raw, enter):
            assert raw.execute("SELECT llmbase.current_user_id()").fetchone() == (None,)


@pytest.mark.parametrize(
    "claims",
    ["{not json", "[1, 2]", "null", '"a string"', '{"sub": 42}', '{"sub": null, "tenant_id": "nope"}', "{}"],
)
def test_malformed_claims_see_nothing(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded], claims: str
) -> None:
    a, _ = two

    # Even with the SDK's GUCs naming a tenant: claims present means claims only.
    def enter(conn: psycopg.Connection[Any]) -> None:
        sdk_scope(a.tenant, role="authenticated")(conn)
        postgrest_scope(claims)(conn)

    assert _blank_denied(seen(admin, raw, enter)) == only_public(admin)
    assert _blank_denied(seen(admin, raw, postgrest_scope(claims))) == only_public(admin)


def test_claims_win_over_sdk_gucs(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    """llmbase.tenant_id / llmbase.user_id are ignored once request.jwt.claims is set."""
    a, b = two
    for gucs in ((b.tenant, None), (b.tenant, b.u1), (a.tenant, None), (a.tenant, a.u2)):

        def enter(conn: psycopg.Connection[Any], gucs: tuple[UUID, UUID | None] = gucs) -> None:
            sdk_scope(gucs[0], gucs[1], role="authenticated")(conn)
            postgrest_scope(jwt(a.auth1, a.tenant))(conn)

        # Tenant-wide GUCs (user unset) must not widen a JWT client to the whole tenant.
        assert seen(admin, raw, enter) == expected_for_u1(admin, a), gucs


# -- roles ---------------------------------------------------------------------------------------
def test_anon_reads_public_documents_only(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    """Anonymous clients read every tenant's public documents, their chunks and the
    collections holding them, and nothing else; they write nothing."""
    a, b = two
    for claims in ({"role": "anon"}, jwt(a.auth1, a.tenant) | {"role": "anon"}):
        got = seen(admin, raw, postgrest_scope(claims, role="anon"))
        assert _blank_denied(got) == only_public(admin)
        assert got["documents"] == {a.docs.public, b.docs.public}
        assert got["chunks"] == {a.docs.public_chunk, b.docs.public_chunk}
        assert got["collections"] == {a.docs.kb, b.docs.kb}  # not "notes": nothing public in it
    anon = postgrest_scope({"role": "anon"}, role="anon")
    with scoped(raw, anon):
        assert raw.execute(
            "SELECT content FROM llmbase.chunks WHERE document_id = %s", (a.docs.public,)
        ).fetchall() == [("public faq",)]
    for stmt, params in (
        ("INSERT INTO llmbase.conversations (title) VALUES ('anon')", ()),
        (
            "INSERT INTO llmbase.documents (tenant_id, collection_id, is_public, content_hash)"
            " VALUES (%s, %s, true, repeat('0', 64))",
            (a.tenant, a.docs.kb),
        ),
        ("UPDATE llmbase.documents SET title = 'defaced' WHERE id = %s", (a.docs.public,)),
        ("DELETE FROM llmbase.chunks WHERE id = %s", (a.docs.public_chunk,)),
    ):
        with scoped(raw, anon), pytest.raises(psycopg.errors.InsufficientPrivilege):
            raw.execute(stmt, params)


def test_service_role_sees_everything(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    got = seen(admin, raw, postgrest_scope({"role": "service_role"}, role="service_role"))
    for name, ids in got.items():
        q = sql.SQL("SELECT {} FROM {}").format(sql.Identifier(IDS[name]), qualified(name))
        truth = {r[0] for r in admin.execute(q).fetchall()}
        if name == "auth_identities":
            assert ids is None  # private to the definer functions, even for service_role
        else:
            assert ids == truth, name


def test_authenticated_cannot_reach_context_or_private_objects(
    raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    a, b = two
    enter = postgrest_scope(jwt(a.auth1, a.tenant))
    for stmt, params in (
        ("SELECT llmbase.set_tenant_context(%s)", (b.tenant,)),
        ("SELECT llmbase.set_user_context(%s, %s)", (b.u1, b.tenant)),
        ("SELECT llmbase.clear_context()", ()),
        ("SELECT * FROM llmbase.auth_identities", ()),
        ("SELECT llmbase.tenant_id_by_slug('globex')", ()),
        ("SELECT * FROM llmbase.authenticate_api_key(%s, %s)", (b.key, b"\0" * 32)),
        ("SELECT llmbase.bump_user_activity(%s, %s, 1)", (b.tenant, b.u1)),
        ("SELECT * FROM llmbase.api_keys", ()),
        ("UPDATE llmbase.users SET auth_id = 'hijack' WHERE id = %s", (a.u1,)),
        ("UPDATE llmbase.user_profiles SET total_tokens = 0 WHERE user_id = %s", (a.u1,)),
        ("INSERT INTO llmbase.users (external_id) VALUES ('new')", ()),
        ("DELETE FROM llmbase.users WHERE id = %s", (a.u1,)),
        (
            "INSERT INTO llmbase.feedback_summary (tenant_id, message_id, conversation_id)"
            " VALUES (%s, %s, %s)",
            (a.tenant, a.msg1, a.conv1),
        ),
        ("TRUNCATE llmbase.conversations", ()),
    ):
        with scoped(raw, enter), pytest.raises(psycopg.errors.InsufficientPrivilege):
            raw.execute(stmt, params)


def test_authenticated_writes_only_as_itself(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    a, _ = two
    enter = postgrest_scope(jwt(a.auth1, a.tenant))
    with scoped(raw, enter):
        # Own conversation and message: allowed, owned by the caller.
        row = raw.execute(
            "INSERT INTO llmbase.conversations (title) VALUES ('mine') RETURNING tenant_id, user_id"
        ).fetchone()
        assert row == (a.tenant, a.u1)
        raw.execute("UPDATE llmbase.users SET display_name = 'me' WHERE id = %s", (a.u1,))
        raw.execute("UPDATE llmbase.user_profiles SET preferences = '{\"x\": 1}' WHERE user_id = %s", (a.u1,))
        assert (
            raw.execute("UPDATE llmbase.users SET display_name = 'you' WHERE id = %s", (a.u2,)).rowcount == 0
        )
        assert (
            raw.execute("UPDATE llmbase.conversations SET title = 'x' WHERE id = %s", (a.shared,)).rowcount
            == 0
        )
        assert (
            raw.execute("DELETE FROM llmbase.messages WHERE conversation_id = %s", (a.conv1,)).rowcount == 0
        )
    for stmt, params in (
        ("INSERT INTO llmbase.conversations (title, user_id) VALUES ('theirs', %s)", (a.u2,)),
        ("INSERT INTO llmbase.conversations (title, user_id) VALUES ('shared', NULL)", ()),
        (
            "INSERT INTO llmbase.messages (conversation_id, role, content, user_id) VALUES (%s, 'user', 'x', %s)",
            (a.conv1, a.u2),
        ),
        (
            "INSERT INTO llmbase.feedback (message_id, conversation_id, user_id, rating) VALUES (%s, %s, %s, 1)",
            (a.shared_msg, a.shared, a.u2),
        ),
        ("UPDATE llmbase.conversations SET user_id = %s WHERE id = %s", (a.u2, a.conv1)),
        (
            "INSERT INTO llmbase.documents (collection_id, user_id, content_hash) VALUES (%s, %s, repeat('0', 64))",
            (a.docs.kb, a.u2),
        ),
        (
            "INSERT INTO llmbase.documents (collection_id, user_id, content_hash) VALUES (%s, NULL, repeat('0', 64))",
            (a.docs.kb,),
        ),
        ("UPDATE llmbase.documents SET user_id = %s WHERE id = %s", (a.u2, a.docs.doc1)),
        ("SELECT llmbase.create_collection('mine', 3)", ()),
    ):
        with scoped(raw, enter), pytest.raises(psycopg.errors.InsufficientPrivilege):
            raw.execute(stmt, params)
    # Own documents and chunks: written with the caller's tenant and user (column defaults).
    with scoped(raw, enter):
        row = raw.execute(
            "INSERT INTO llmbase.documents (collection_id, content_hash) VALUES (%s, repeat('1', 64))"
            " RETURNING id, tenant_id, user_id",
            (a.docs.kb,),
        ).fetchone()
        assert row is not None
        assert row[1:] == (a.tenant, a.u1)
        chunk = raw.execute(
            "INSERT INTO llmbase.chunks (collection_id, document_id, position, content)"
            " VALUES (%s, %s, 0, 'mine') RETURNING tenant_id, user_id",
            (a.docs.kb, row[0]),
        ).fetchone()
        assert chunk == (a.tenant, a.u1)
        for table, ident in (
            ("documents", a.docs.shared),
            ("documents", a.docs.doc2),
            ("chunks", a.docs.chunk2),
        ):
            q = sql.SQL("UPDATE {} SET metadata = '{{}}' WHERE id = %s").format(qualified(table))
            assert raw.execute(q, (ident,)).rowcount == 0


def test_authenticated_cannot_touch_other_tenant(
    admin: psycopg.Connection[Any], raw: psycopg.Connection[Any], two: tuple[Seeded, Seeded]
) -> None:
    """The full attack matrix, as a PostgREST user of tenant A (and as one claiming B)."""
    a, b = two
    tables = tenant_tables(admin)
    before = dump_tenant(admin, b.tenant, tables)
    for claims in (jwt(a.auth1, a.tenant), jwt(a.auth1), jwt(a.auth1, b.tenant)):
        out = attack(admin, raw, postgrest_scope(claims), b.tenant, tables, own=a.tenant)
        assert out.leaks == [], claims
    assert dump_tenant(admin, b.tenant, tables) == before
