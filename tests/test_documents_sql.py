"""The seeds' SQL functions for SQL and Supabase-RPC clients: match_documents,
match_embeddings, delete_by_metadata, clear_all_embeddings, as the application role with
the context functions and as PostgREST roles with JWT claims (RLS applies to all of them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
import pytest

import llmbase
from llmbase.documents.rows import Collection
from test_documents_search import Row, clone_db, create_collection, exact_top, load, vec_text

Conn = psycopg.Connection[Any]


@dataclass
class Seed:
    a: UUID
    b: UUID
    u1: UUID
    u2: UUID
    auth1: str
    kb: Collection
    other: Collection  # a second collection of A (another dimension)
    kb_b: Collection
    chunks: dict[str, UUID]  # by content
    rows: list[Row]
    vectors: np.ndarray


OWNERS = ("u1", "u2", "shared", "public")


@pytest.fixture(scope="module")
def seeded(server_url: str, template_db: str) -> Iterator[tuple[str, Seed]]:
    """One seeded database for the module; every test rolls back what it does."""
    for url in clone_db(server_url, template_db):
        client = llmbase.connect(url, migrate=False)
        try:
            yield url, _seed(client, url)
        finally:
            client.close()


def _seed(client: llmbase.LLMBase, url: str) -> Seed:
    a, b = client.tenants.create("sql-a"), client.tenants.create("sql-b")
    ta, tb = client.tenant(a.id), client.tenant(b.id)
    u1 = ta.users.create("u1", auth_id="auth-sql-u1").id
    u2 = ta.users.create("u2", auth_id="auth-sql-u2").id
    kb = create_collection(ta, "kb", 3)
    other = create_collection(ta, "other", 2, distance="l2")
    kb_b = create_collection(tb, "kb", 3)
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(16, 3)).astype(np.float32)
    rows = []
    for i in range(16):
        owner = OWNERS[i % 4]
        user = {"u1": u1, "u2": u2}.get(owner)
        meta = {"owner": owner, "topic": "x" if i % 2 else "y", "i": i}
        rows.append(Row(i, f"{owner} {i}", vectors[i].tolist(), meta, user, owner == "public"))
    loaded = load(url, kb, rows)
    load(url, other, [Row(0, "u1 other", [1.0, 0.0], {"topic": "x"}, u1), Row(1, "shared other", [0.0, 1.0])])
    b_rows = [
        Row(0, "b shared", vectors[0].tolist(), {"topic": "x"}),
        Row(1, "b public", vectors[1].tolist(), {"topic": "x"}, None, True),
    ]
    load(url, kb_b, b_rows)
    chunks = {r.content: cid for r, cid in zip(rows, loaded.chunks, strict=True)}
    return Seed(a.id, b.id, u1, u2, "auth-sql-u1", kb, other, kb_b, chunks, rows, vectors)


@pytest.fixture
def seed(seeded: tuple[str, Seed]) -> Seed:
    return seeded[1]


@pytest.fixture
def conn(seeded: tuple[str, Seed]) -> Iterator[Conn]:
    """A transaction on the shared database, rolled back afterwards."""
    with psycopg.connect(seeded[0]) as c, c.transaction(force_rollback=True):
        yield c


def as_app(conn: Conn, tenant: UUID | None, user: UUID | None = None) -> None:
    """An SQL client: the application role and the seeds' context functions."""
    conn.execute("SET LOCAL ROLE llmbase_app")
    conn.execute("SELECT llmbase.clear_context()")
    if tenant is not None:
        conn.execute("SELECT llmbase.set_tenant_context(%s)", (tenant,))
    if user is not None:
        conn.execute("SELECT llmbase.set_user_context(%s)", (user,))


def as_postgrest(conn: Conn, role: str, claims: dict[str, Any] | None = None) -> None:
    conn.execute("SELECT set_config('role', %s, true)", (role,))
    if claims is not None:
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))


def match(
    conn: Conn, q: np.ndarray | list[float], *args: Any, fn: str = "match_documents"
) -> list[dict[str, Any]]:
    placeholders = ", ".join(["%s::vector", *["%s"] * len(args)])
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(f"SELECT * FROM llmbase.{fn}({placeholders})", (vec_text(list(q)), *args)).fetchall()


def owners(rows: list[dict[str, Any]]) -> set[str]:
    return {r["content"].split()[0] for r in rows}


# -- match_documents / match_embeddings --------------------------------------------------------------
def test_match_documents_for_a_tenant_wide_sql_client(conn: Conn, seed: Seed) -> None:
    as_app(conn, seed.a)
    q = seed.vectors[3] + 0.05
    rows = match(conn, q, -1.0, 10, "{}", "kb")
    truth, dists = exact_top(seed.vectors, q, "cosine", 10)
    assert [r["id"] for r in rows] == [seed.chunks[seed.rows[i].content] for i in truth]
    assert [r["similarity"] for r in rows] == pytest.approx([1 - d for d in dists], abs=1e-5)
    assert set(rows[0]) == {"id", "document_id", "content", "metadata", "similarity"}
    assert rows[0]["metadata"] == seed.rows[truth[0]].metadata
    # Threshold, count, containment filter, collection by id.
    cut = rows[4]["similarity"]
    assert [r["id"] for r in match(conn, q, cut, 10, "{}", "kb")] == [r["id"] for r in rows[:4]]
    assert len(match(conn, q, -1.0, 3, "{}", "kb")) == 3
    only = match(conn, q, -1.0, 100, '{"topic": "x", "owner": "u2"}', str(seed.kb.id))
    assert {r["metadata"]["i"] for r in only} == {1, 5, 9, 13}
    # Another collection of another dimension, side by side (l2: similarity = -distance).
    other = match(conn, [1.0, 0.1], None, 10, "{}", "other")
    assert [r["content"] for r in other] == ["u1 other", "shared other"]
    assert other[0]["similarity"] == pytest.approx(-0.1, abs=1e-6)


def test_match_documents_follows_the_users_rls(conn: Conn, seed: Seed) -> None:
    as_app(conn, seed.a, seed.u1)
    rows = match(conn, seed.vectors[0], -1.0, 100, "{}", "kb")
    assert owners(rows) == {"u1", "shared", "public"}
    assert len(rows) == 12
    assert not {r["id"] for r in rows} & {seed.chunks[f"u2 {i}"] for i in (1, 5, 9, 13)}
    emb = match(conn, seed.vectors[0], -1.0, 100, "{}", "kb", fn="match_embeddings")
    assert set(emb[0]) == {"id", "content", "metadata", "similarity", "user_id"}
    assert {r["id"] for r in emb} == {r["id"] for r in rows}
    assert {r["user_id"] for r in emb} == {seed.u1, None}
    sims = [r["similarity"] for r in emb]
    assert sims == sorted(sims, reverse=True)
    # The seed's default threshold (0.78) applies when it is not given.
    default = conn.execute(
        "SELECT count(*) FROM llmbase.match_embeddings(%s::vector, collection => 'kb', match_count => 100)",
        (vec_text(seed.vectors[0].tolist()),),
    ).fetchone()
    assert default == (sum(1 for r in emb if r["similarity"] > 0.78),)


def test_match_documents_refuses_bad_input(conn: Conn, seed: Seed) -> None:
    as_app(conn, seed.a)
    for args, error in (
        (([1.0, 2.0], 0.0, 10, "{}", "kb"), psycopg.errors.DataException),  # 2 dims, not 3
        (([1.0, 2.0, 3.0], 0.0, 0, "{}", "kb"), psycopg.errors.InvalidParameterValue),
        (([1.0, 2.0, 3.0], 0.0, 1001, "{}", "kb"), psycopg.errors.InvalidParameterValue),
        (([1.0, 2.0, 3.0], 0.0, 10, "[1]", "kb"), psycopg.errors.InvalidParameterValue),
        (([1.0, 2.0, 3.0], 0.0, 10, "{}", None), psycopg.errors.InvalidParameterValue),  # two collections
        (([1.0, 2.0, 3.0], 0.0, 10, "{}", "missing"), psycopg.errors.NoDataFound),
    ):
        with pytest.raises(error), conn.transaction():
            match(conn, args[0], *args[1:])


def test_other_tenants_and_no_context_see_public_chunks_only(conn: Conn, seed: Seed) -> None:
    """Public documents are world-readable (seed 003's anonymous readers): by id, another
    tenant's collection shows them and nothing else; without a context, the same."""
    as_app(conn, seed.a)
    rows = match(conn, seed.vectors[0], -1.0, 10, "{}", str(seed.kb_b.id))
    assert [r["content"] for r in rows] == ["b public"]
    # By name, a tenant's own collection wins over another's public one.
    assert {r["content"] for r in match(conn, seed.vectors[0], -1.0, 100, "{}", "kb")} == set(seed.chunks)
    as_app(conn, None)
    assert owners(match(conn, seed.vectors[0], -1.0, 100, "{}", str(seed.kb.id))) == {"public"}
    with pytest.raises(psycopg.errors.NoDataFound), conn.transaction():
        match(conn, [1.0, 0.0], -1.0, 10, "{}", str(seed.other.id))


# -- deletes -----------------------------------------------------------------------------------------
def _remaining(conn: Conn, collection: Collection) -> set[str]:
    """Titles of the collection's documents, as the owner inside the test's transaction."""
    with conn.transaction():
        conn.execute("RESET ROLE")
        docs = {
            r[0]
            for r in conn.execute(
                "SELECT title FROM llmbase.documents WHERE collection_id = %s", (collection.id,)
            )
        }
        chunk_docs = {
            r[0]
            for r in conn.execute(
                "SELECT d.title FROM llmbase.chunks ch JOIN llmbase.documents d ON d.id = ch.document_id"
                " WHERE ch.collection_id = %s",
                (collection.id,),
            )
        }
    assert chunk_docs <= docs  # chunks go with their documents
    return docs


def test_delete_by_metadata_deletes_what_the_caller_may(conn: Conn, seed: Seed) -> None:
    before = _remaining(conn, seed.kb)
    assert len(before) == 16
    as_app(conn, seed.a, seed.u1)
    # Document metadata is {"doc": n}; u1 owns docs 0, 4, 8, 12 and u2 docs 1, 5, 9, 13.
    n = conn.execute("SELECT llmbase.delete_by_metadata('{\"doc\": 0}', 'kb')").fetchone()
    assert n == (1,)
    n = conn.execute("SELECT llmbase.delete_by_metadata('{\"doc\": 1}', 'kb')").fetchone()
    assert n == (0,)  # u2's
    for bad in ("{}", "[1]", None):
        with pytest.raises(psycopg.errors.InvalidParameterValue), conn.transaction():
            conn.execute("SELECT llmbase.delete_by_metadata(%s::jsonb, 'kb')", (bad,))
    assert _remaining(conn, seed.kb) == before - {"doc 0"}
    as_app(conn, seed.a)  # tenant-wide: every matching document of the collection
    assert conn.execute("SELECT llmbase.delete_by_metadata('{\"doc\": 1}', 'kb')").fetchone() == (1,)
    assert _remaining(conn, seed.kb) == before - {"doc 0", "doc 1"}
    assert _remaining(conn, seed.kb_b) == {"doc 0", "doc 1"}


def test_clear_all_embeddings_needs_a_user_and_clears_only_theirs(conn: Conn, seed: Seed) -> None:
    as_app(conn, seed.a)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute("SELECT llmbase.clear_all_embeddings()")
    as_app(conn, seed.a, seed.u1)
    assert conn.execute("SELECT llmbase.clear_all_embeddings('kb')").fetchone() == (4,)
    assert _remaining(conn, seed.kb) == {f"doc {n}" for n in range(16) if n % 4}
    assert _remaining(conn, seed.other) == {"doc 0", "doc 1"}
    as_app(conn, seed.a, seed.u1)
    assert conn.execute("SELECT llmbase.clear_all_embeddings()").fetchone() == (1,)  # "u1 other"
    assert _remaining(conn, seed.other) == {"doc 1"}
    conn.execute("RESET ROLE")
    left = conn.execute(
        "SELECT count(*) FROM llmbase.documents WHERE tenant_id = %s AND user_id = %s", (seed.a, seed.u1)
    ).fetchone()
    assert left == (0,)


# -- PostgREST roles ------------------------------------------------------------------------------------
def test_authenticated_rpc_sees_own_shared_and_public(conn: Conn, seed: Seed) -> None:
    as_postgrest(
        conn, "authenticated", {"sub": seed.auth1, "role": "authenticated", "tenant_id": str(seed.a)}
    )
    rows = match(conn, seed.vectors[0], -1.0, 100, "{}", "kb")
    assert owners(rows) == {"u1", "shared", "public"}
    # A user deletes only their own documents through RPC as well.
    assert conn.execute("SELECT llmbase.delete_by_metadata('{\"doc\": 1}', 'kb')").fetchone() == (0,)
    assert conn.execute("SELECT llmbase.delete_by_metadata('{\"doc\": 0}', 'kb')").fetchone() == (1,)
    assert conn.execute("SELECT llmbase.clear_all_embeddings()").fetchone() == (4,)


def test_anon_rpc_sees_public_chunks_only(conn: Conn, seed: Seed) -> None:
    as_postgrest(conn, "anon", {"role": "anon"})
    for coll in (seed.kb, seed.kb_b):
        rows = match(conn, seed.vectors[0], -1.0, 100, "{}", str(coll.id))
        assert rows
        assert all("public" in r["content"].split() for r in rows)
    with pytest.raises(psycopg.errors.InvalidParameterValue), conn.transaction():
        match(conn, seed.vectors[0], -1.0, 100, "{}", None)  # two public collections: name one
    with pytest.raises(psycopg.errors.NoDataFound), conn.transaction():
        match(conn, [1.0, 0.0], -1.0, 100, "{}", str(seed.other.id))  # nothing public in it
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute("SELECT llmbase.delete_by_metadata('{\"doc\": 1}', %s)", (str(seed.kb.id),))
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute("SELECT llmbase.clear_all_embeddings()")


def test_service_role_rpc_sees_everything(conn: Conn, seed: Seed) -> None:
    as_postgrest(conn, "service_role", {"role": "service_role"})
    rows = match(conn, seed.vectors[0], -1.0, 100, "{}", str(seed.kb.id))
    assert len(rows) == 16


def test_match_functions_touch_only_the_collections_partition(conn: Conn, seed: Seed) -> None:
    """The collection id is a literal in the statement: other partitions are never read."""
    as_app(conn, seed.a, seed.u1)
    for fn in ("match_documents", "match_embeddings"):
        assert match(conn, seed.vectors[0], -1.0, 5, '{"topic": "x"}', "kb", fn=fn)
    conn.execute("RESET ROLE")
    reads = dict(
        conn.execute(
            "SELECT c.partition_name, coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0)"
            " FROM llmbase.collections c LEFT JOIN pg_stat_xact_user_tables s"
            " ON s.schemaname = 'llmbase' AND s.relname = c.partition_name"
        ).fetchall()
    )
    assert reads[seed.kb.partition_name] > 0
    assert reads[seed.other.partition_name] == reads[seed.kb_b.partition_name] == 0
