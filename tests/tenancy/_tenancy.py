"""Shared helpers for the tenant-isolation tests: catalog discovery, seeding two tenants
through the SDK, raw-SQL scopes (SDK GUCs or PostgREST claims), dumps and the attack matrix.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import psycopg
from psycopg import errors as pgerr
from psycopg import sql

import llmbase
from llmbase._ids import uuid7
from llmbase.db import ADMIN, Scope
from llmbase.ingest.api import enqueue

#: Every tenant table the seeding below knows how to populate, with its tenant column.
#: A new tenant table must be added here (and to `seed_tenant`), or the matrix fails.
KNOWN_TABLES: dict[str, str] = {
    "tenants": "id",
    "users": "tenant_id",
    "auth_identities": "tenant_id",
    "user_profiles": "tenant_id",
    "tenant_settings": "tenant_id",
    "api_keys": "tenant_id",
    "conversations": "tenant_id",
    "messages": "tenant_id",
    "feedback": "tenant_id",
    "feedback_summary": "tenant_id",
    # 0003: the request log and what the writer maintains with it (partitions of requests
    # are part of requests: `tenant_tables` leaves them out)
    "requests": "tenant_id",
    "request_rollups": "tenant_id",
    "request_rollups_tenant": "tenant_id",  # tenant-wide scope only (no user column)
    "runs": "tenant_id",
    "run_iterations": "tenant_id",
    "run_tool_calls": "tenant_id",
    "model_prices": "tenant_id",
    "ingest_dead_letters": "tenant_id",
    # 0004: iteration rollups, kept by triggers on run_iterations
    "run_iteration_rollups": "tenant_id",  # tenant-wide scope only (no user column)
    # 0005: the document store (chunks' per-collection partitions are part of chunks) and
    # the retrieval log (written in operator scope, read under RLS)
    "collections": "tenant_id",
    "documents": "tenant_id",
    "chunks": "tenant_id",
    "retrievals": "tenant_id",
    "retrieval_results": "tenant_id",
    # 0008: the audit log (rows written by triggers and audit_event; operator-level entries
    # have tenant_id NULL and are visible in operator scope only)
    "audit_log": "tenant_id",
    # 0006: rate limits and budgets (definitions, and usage rows written only by their
    # SECURITY DEFINER functions; subject_key = the user's id or the all-zero uuid)
    "rate_limits": "tenant_id",
    "rate_limit_counters": "tenant_id",
    "budgets": "tenant_id",
    "budget_periods": "tenant_id",
    "budget_reservations": "tenant_id",
    # 0007: the response cache (shared by the tenant's users)
    "cache_entries": "tenant_id",
}

#: Rows every role may read by design (seed 003's anonymous readers): public documents,
#: their chunks and the collections holding them. Reading them is not a leak; changing
#: them from outside their tenant is.
PUBLIC_ROWS: dict[str, str] = {
    "documents": "is_public",
    "chunks": "is_public",
    "collections": "EXISTS (SELECT FROM llmbase.documents d WHERE d.collection_id = collections.id AND d.is_public)",
}

#: Partition keys a forged copy keeps (a row must route to an existing partition to reach
#: the policy check at all).
PARTITION_KEYS: dict[str, tuple[str, ...]] = {"chunks": ("collection_id",)}


def not_public(table: str) -> sql.Composable:
    """`NOT (<the table's public-row condition>)`, or TRUE for tables without public rows."""
    pred = PUBLIC_ROWS.get(table)
    return sql.SQL("NOT ({})").format(sql.SQL(pred)) if pred else sql.SQL("TRUE")


Conn = psycopg.Connection[Any]
EnterScope = Callable[[Conn], None]


# -- catalog -------------------------------------------------------------------------------
def tenant_tables(conn: Conn) -> dict[str, str]:
    """Tables (and partitioned tables) of schema llmbase with a tenant_id column, plus tenants."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid"
        " WHERE n.nspname = 'llmbase' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        "   AND a.attname = 'tenant_id' AND NOT a.attisdropped ORDER BY 1"
    ).fetchall()
    found = {r[0]: "tenant_id" for r in rows}
    found["tenants"] = "id"
    return found


def tenant_views(conn: Conn) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid"
        " WHERE n.nspname = 'llmbase' AND c.relkind IN ('v', 'm') AND a.attname = 'tenant_id'"
        " ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def pk_columns(conn: Conn, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i"
        " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.ord",
        (f"llmbase.{table}",),
    ).fetchall()
    return [r[0] for r in rows]


def insertable_columns(conn: Conn, table: str) -> list[str]:
    """Columns an INSERT may name (generated columns refuse any value)."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (f"llmbase.{table}",),
    ).fetchall()
    return [r[0] for r in rows]


def qualified(table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier("llmbase"), sql.Identifier(table))


# -- seeding through the SDK -------------------------------------------------------------------
@dataclass(frozen=True)
class Seeded:
    """One tenant's ids: two users with auth identities, private and shared conversations."""

    tenant: UUID
    slug: str
    u1: UUID
    u2: UUID
    auth1: str
    auth2: str
    conv1: UUID  # u1's private conversation
    conv2: UUID  # u2's private conversation
    shared: UUID  # the tenant's shared conversation (user_id NULL)
    msg1: UUID  # u1's message in conv1
    reply1: UUID  # assistant reply in conv1
    msg2: UUID  # u2's message in conv2
    shared_msg: UUID
    key: UUID
    docs: Docs


@dataclass(frozen=True)
class Docs:
    """One tenant's document store: collection "kb" (holding the public document) and
    "notes" (no public rows), documents of u1, u2, shared and public, a chunk of each, and
    the retrieval log (u1's retrieval for msg1 and a tenant-level one)."""

    kb: UUID
    notes: UUID
    doc1: UUID  # u1's private document
    doc2: UUID  # u2's private document
    shared: UUID  # user_id NULL
    public: UUID  # user_id NULL, is_public
    notes_doc: UUID
    chunk1: UUID
    chunk2: UUID
    shared_chunk: UUID
    public_chunk: UUID
    notes_chunk: UUID
    retrieval1: UUID  # u1's, for msg1 in conv1
    retrieval_t: UUID  # tenant-level (no user)


def seed_tenant(client: llmbase.LLMBase, slug: str) -> Seeded:
    """A tenant with a row in every tenant table, written only through the SDK."""
    t = client.admin().tenants.create(slug, name=f"Tenant {slug}")
    tc = client.tenant(t.id)
    auth1, auth2 = f"auth-{slug}-1-{uuid.uuid4().hex[:8]}", f"auth-{slug}-2-{uuid.uuid4().hex[:8]}"
    u1 = tc.users.create(f"{slug}-u1", auth_id=auth1, email=f"u1@{slug}.example")
    u2 = tc.users.create(f"{slug}-u2", auth_id=auth2, email=f"u2@{slug}.example")
    c1, c2 = tc.user(u1.id), tc.user(u2.id)
    conv1 = c1.conversations.create(title=f"{slug} u1 private", metadata={"secret": slug})
    msg1 = c1.conversations.add_message(conv1.id, role="user", content=f"{slug} u1 secret")
    reply1 = c1.conversations.add_message(conv1.id, role="assistant", content="reply", token_count=7)
    conv2 = c2.conversations.create(title=f"{slug} u2 private")
    msg2 = c2.conversations.add_message(conv2.id, role="user", content=f"{slug} u2 secret")
    shared = tc.conversations.create(title=f"{slug} shared", shared=True)
    shared_msg = tc.conversations.add_message(shared.id, role="assistant", content="for everyone")
    c1.feedback.rate(reply1.id, rating="up", comment="good")
    c2.feedback.rate(msg2.id, rating="down")
    c1.feedback.rate(shared_msg.id, score=0.5)
    key = tc.keys.create(f"{slug} key", scopes=["read", "write"], user_id=u1.id)
    tc.settings.put({"default_model": f"model-{slug}", "custom": {"secret": slug}})
    c1.users.set_preferences({"theme": slug})
    c1.audit.record("report.export", "report", f"{slug}-report", details={"secret": slug})
    # Limits and budgets: tenant-wide and u1's own; u1's usage fills counters, periods and
    # an open reservation (tenant-level and per-user rows).
    tc.limits.set(1000)
    tc.limits.set(100, user=u1.id)
    c1.limits.consume()
    tc.budgets.set("50")
    tc.budgets.set("5", user=u1.id)
    c1.budgets.reserve("0.01")
    # The response cache: one entry of the tenant.
    tc.cache.put(
        {"messages": [{"role": "user", "content": f"{slug} secret question"}]},
        {"answer": f"{slug} secret answer"},
        provider="openai",
        model=f"model-{slug}",
    )
    tc.prices.set(f"model-{slug}", input_per_mtok=1, output_per_mtok=2)
    # The request log through its write path: each user's calls and runs, a tenant-wide call,
    # and a record the writer can never store (it lands in ingest_dead_letters).
    c1.requests.log(
        model=f"model-{slug}",
        tokens_prompt=10,
        tokens_completion=5,
        latency_ms=12.0,
        request_body={"secret": slug},
    )
    c2.requests.log(model=f"model-{slug}", latency_ms=30.0, conversation_id=conv2.id)
    tc.requests.log(model=f"model-{slug}", status="error", error_message=f"{slug} failed")
    now = datetime.now(UTC)
    for c in (c1, c2):
        run = uuid.uuid4()
        enqueue(c, "run", {"id": run, "name": f"{slug} run", "status": "running", "started_at": now})
        enqueue(c, "iteration", {"run_id": run, "iteration": 1, "api_ms": 5.0, "started_at": now})
        enqueue(c, "tool_call", {"run_id": run, "iteration": 1, "name": "search", "duration_ms": 2.0})
        enqueue(
            c,
            "run",
            {"id": run, "status": "success", "ended_at": now, "total_ms": 10.0, "iteration_count": 1},
        )
    enqueue(tc, "run", {"name": f"{slug} run without an id"})
    assert client.requests.flush(60), client.requests.stats()
    docs = seed_documents(client, t.id, u1.id, u2.id, conv1.id, msg1.id)
    return Seeded(
        tenant=t.id,
        slug=slug,
        u1=u1.id,
        u2=u2.id,
        auth1=auth1,
        auth2=auth2,
        conv1=conv1.id,
        conv2=conv2.id,
        shared=shared.id,
        msg1=msg1.id,
        reply1=reply1.id,
        msg2=msg2.id,
        shared_msg=shared_msg.id,
        key=key.key.id,
        docs=docs,
    )


def _document(
    conn: Conn, collection: UUID, text: str, vector: list[float], *, public: bool = False
) -> tuple[UUID, UUID]:
    """A document with one chunk, owned as the transaction's scope says (column defaults)."""
    row = conn.execute(
        "INSERT INTO llmbase.documents (collection_id, is_public, title, content_hash, metadata)"
        " VALUES (%s, %s, %s, encode(sha256(convert_to(%s, 'UTF8')), 'hex'), %s::jsonb)"
        " RETURNING id, user_id",
        (collection, public, text, text, json.dumps({"title": text})),
    ).fetchone()
    assert row is not None
    chunk = conn.execute(
        "INSERT INTO llmbase.chunks (collection_id, document_id, user_id, is_public, position, content,"
        " metadata, embedding) VALUES (%s, %s, %s, %s, 0, %s, %s::jsonb, %s::vector) RETURNING id",
        (collection, row[0], row[1], public, text, json.dumps({"title": text}), str(vector)),
    ).fetchone()
    assert chunk is not None
    return row[0], chunk[0]


def seed_documents(
    client: llmbase.LLMBase, tenant: UUID, u1: UUID, u2: UUID, conv1: UUID, msg1: UUID
) -> Docs:
    """The document store with plain SQL as the application role (RLS applies), and the
    retrieval log in operator scope, where the background writer stores it."""
    db = client.database
    with db.transaction(Scope(tenant)) as conn:
        kb = conn.execute("SELECT id FROM llmbase.create_collection('kb', 3)").fetchone()
        notes = conn.execute(
            "SELECT id FROM llmbase.create_collection('notes', 2, p_index_type => 'none')"
        ).fetchone()
        assert kb is not None
        assert notes is not None
        shared, shared_chunk = _document(conn, kb[0], "shared guide", [1.0, 0.0, 0.0])
        public, public_chunk = _document(conn, kb[0], "public faq", [0.0, 1.0, 0.0], public=True)
        notes_doc, notes_chunk = _document(conn, notes[0], "tenant notes", [1.0, 1.0])
    with db.transaction(Scope(tenant, u1)) as conn:
        doc1, chunk1 = _document(conn, kb[0], "u1 private", [0.0, 0.0, 1.0])
    with db.transaction(Scope(tenant, u2)) as conn:
        doc2, chunk2 = _document(conn, kb[0], "u2 private", [1.0, 1.0, 1.0])
    retrieval1, retrieval_t = uuid7(), uuid7()
    with db.transaction(ADMIN) as conn:
        conn.execute(
            "INSERT INTO llmbase.retrievals (tenant_id, id, user_id, collection_id, mode, method, query, k,"
            " conversation_id, message_id, result_count) VALUES"
            " (%s, %s, %s, %s, 'vector', 'index', 'secret question', 2, %s, %s, 2),"
            " (%s, %s, NULL, %s, 'text', 'exact', 'tenant question', 1, NULL, NULL, 1)",
            (tenant, retrieval1, u1, kb[0], conv1, msg1, tenant, retrieval_t, kb[0]),
        )
        conn.execute(
            "INSERT INTO llmbase.retrieval_results (tenant_id, retrieval_id, rank, chunk_id, document_id,"
            " score, distance) VALUES (%s, %s, 1, %s, %s, 0.9, 0.1), (%s, %s, 2, %s, %s, 0.8, 0.2),"
            " (%s, %s, 1, %s, %s, 0.5, NULL)",
            (
                *(tenant, retrieval1, chunk1, doc1),
                *(tenant, retrieval1, shared_chunk, shared),
                *(tenant, retrieval_t, public_chunk, public),
            ),
        )
    return Docs(
        kb[0],
        notes[0],
        doc1,
        doc2,
        shared,
        public,
        notes_doc,
        chunk1,
        chunk2,
        shared_chunk,
        public_chunk,
        notes_chunk,
        retrieval1,
        retrieval_t,
    )


# -- a seeded template: seed once per session, clone per test (CREATE DATABASE ... TEMPLATE) ----
def _url(server_url: str, dbname: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + dbname))


def build_seeded(server_url: str, template: str) -> tuple[str, Seeded, Seeded]:
    """A template database at head holding tenants "acme" (A) and "globex" (B), seeded."""
    name = f"seeded_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    client = llmbase.connect(_url(server_url, name), migrate=False)
    try:
        a, b = seed_tenant(client, "acme"), seed_tenant(client, "globex")
    finally:
        client.close()
    return name, a, b


@contextlib.contextmanager
def clone(server_url: str, template: str) -> Iterator[str]:
    """URL of a fresh copy of `template`, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    try:
        yield _url(server_url, name)
    finally:
        drop_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- raw SQL scopes ------------------------------------------------------------------------------
def sdk_scope(tenant: UUID | str | None, user: UUID | None = None, role: str = "llmbase_app") -> EnterScope:
    """What the SDK does at the start of each transaction (db.py), for raw-SQL tests."""

    def enter(conn: Conn) -> None:
        conn.execute(
            "SELECT set_config('role', %s, true), set_config('llmbase.tenant_id', %s, true),"
            " set_config('llmbase.user_id', %s, true)",
            (role, "" if tenant is None else str(tenant), "" if user is None else str(user)),
        )

    return enter


def postgrest_scope(claims: dict[str, Any] | str | None, role: str = "authenticated") -> EnterScope:
    """What PostgREST does per request: the role, and the JWT claims as a JSON text GUC."""
    raw = claims if isinstance(claims, str) or claims is None else json.dumps(claims)

    def enter(conn: Conn) -> None:
        conn.execute("SELECT set_config('role', %s, true)", (role,))
        if raw is not None:
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (raw,))

    return enter


@contextlib.contextmanager
def scoped(conn: Conn, enter: EnterScope) -> Iterator[Conn]:
    """A transaction on `conn` (autocommit off), entered as `enter`, always rolled back."""
    with conn.transaction(force_rollback=True):
        enter(conn)
        yield conn


#: Triggers that refuse a row referencing something the caller cannot see with the same
#: "not found" error as for something missing (so that refusal reveals no existence).
NOT_FOUND_GUARDS = ("llmbase.messages_check_conversation()",)


def denied(exc: BaseException) -> bool:
    """Refused by a grant or a policy, or by a guard that reports invisible as missing."""
    if isinstance(exc, pgerr.InsufficientPrivilege):
        return True
    context = (exc.diag.context or "") if isinstance(exc, psycopg.Error) else ""
    return isinstance(exc, pgerr.ForeignKeyViolation) and any(g in context for g in NOT_FOUND_GUARDS)


# -- dumps ---------------------------------------------------------------------------------------
def dump_tenant(admin: Conn, tenant: UUID, tables: dict[str, str]) -> dict[str, list[str]]:
    """Every row of `tenant` in every table, as PostgreSQL's row text, sorted (superuser)."""
    out: dict[str, list[str]] = {}
    for table, col in sorted(tables.items()):
        q = sql.SQL("SELECT t::text FROM {} t WHERE {} = %s ORDER BY 1").format(
            qualified(table), sql.Identifier(col)
        )
        out[table] = [r[0] for r in admin.execute(q, (tenant,)).fetchall()]
    return out


def rows_as_json(admin: Conn, table: str, col: str, tenant: UUID) -> list[dict[str, Any]]:
    q = sql.SQL("SELECT to_jsonb(t) FROM {} t WHERE {} = %s").format(qualified(table), sql.Identifier(col))
    return [r[0] for r in admin.execute(q, (tenant,)).fetchall()]


# -- the attack matrix -----------------------------------------------------------------------------
@dataclass
class Outcome:
    """Counts of what the attacker tried; `leaks` names every attempt that got through."""

    attempts: int = 0
    refused: int = 0  # permission denied / RLS violation
    leaks: list[str] | None = None

    def leak(self, what: str) -> None:
        assert self.leaks is not None
        self.leaks.append(what)


def _attempt(conn: Conn, out: Outcome, what: str, q: sql.Composable, params: Any, *, must_fail: bool) -> None:
    """Run one attack in a savepoint. Refused (42501) is safe; so are 0 rows unless it
    `must_fail` (a forged insert must be rejected outright, never silently dropped)."""
    out.attempts += 1
    try:
        with conn.transaction():  # a savepoint: an error leaves the scope intact
            cur = conn.execute(q, params)
            n = cur.rowcount if cur.description is None else len(cur.fetchall())
    except psycopg.Error as exc:
        if denied(exc):
            out.refused += 1
        else:
            out.leak(f"{what}: unexpected {type(exc).__name__}: {exc}")
        return
    if must_fail or n:
        out.leak(f"{what}: succeeded, {n} rows")


def _match(t: sql.Composable, cols: list[str]) -> sql.Composed:
    """`(cols) IN (the same columns of a row given as JSON)`."""
    return sql.SQL("({}) IN (SELECT {} FROM jsonb_populate_record(NULL::{}, %s::jsonb) r)").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in cols),
        t,
    )


def _forge(row: dict[str, Any], table: str, col: str, key: list[str]) -> dict[str, Any]:
    """A copy of a victim's row with fresh key values, still stamped with the victim tenant."""
    forged = dict(row)
    for c in key:
        if c == col or c in PARTITION_KEYS.get(table, ()):
            continue
        forged[c] = str(uuid.uuid4()) if _is_uuid(str(forged.get(c))) else f"forged-{uuid.uuid4().hex[:12]}"
    if table == "tenants":
        forged["slug"] = f"forged-{uuid.uuid4().hex[:12]}"
    return forged


def attack(
    admin: Conn,
    conn: Conn,
    enter: EnterScope,
    victim: UUID,
    tables: dict[str, str],
    *,
    own: UUID | None = None,
) -> Outcome:
    """As `enter`, try to read, change, delete and forge `victim`'s rows in every table.

    Reads by the row's own key (its primary key without the tenant column: "by id"),
    updates and deletes by primary key and by tenant, inserts of a copy stamped with the
    victim's tenant, and (given `own`) moving the attacker's own rows into the victim tenant.
    """
    out = Outcome(leaks=[])
    for table, col in sorted(tables.items()):
        t, tcol = qualified(table), sql.Identifier(col)
        pk = pk_columns(admin, table)
        key = [c for c in pk if c != col] or pk
        victim_rows = rows_as_json(admin, table, col, victim)
        assert victim_rows, f"victim has no rows in {table}: the seeding must populate it"
        own_rows = rows_as_json(admin, table, col, own) if own is not None else []
        by_key, by_pk = _match(t, key), _match(t, pk)
        private = not_public(table)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in insertable_columns(admin, table))
        with scoped(conn, enter):
            for verb, q in (
                ("select", sql.SQL("SELECT * FROM {} WHERE {} = %s AND {}")),
                ("update", sql.SQL("UPDATE {t} SET {c} = {c} WHERE {c} = %s")),
                ("delete", sql.SQL("DELETE FROM {} WHERE {} = %s")),
            ):
                if verb == "update":
                    stmt = q.format(t=t, c=tcol)
                elif verb == "select":
                    stmt = q.format(t, tcol, private)
                else:
                    stmt = q.format(t, tcol)
                _attempt(conn, out, f"{table}: {verb} victim's rows", stmt, (victim,), must_fail=False)
            for row in victim_rows:
                doc, what = json.dumps(row), f"{table} {row_key(row, pk)}"
                # Rows of the attacker's own tenant that share the key (rollups keyed by
                # time and iteration) are not a leak: only rows of another tenant count.
                _attempt(
                    conn,
                    out,
                    f"select {what} by {key}",
                    sql.SQL("SELECT * FROM {} WHERE {} AND {} IS DISTINCT FROM %s AND {}").format(
                        t, by_key, tcol, private
                    ),
                    (doc, own),
                    must_fail=False,
                )
                _attempt(
                    conn,
                    out,
                    f"update {what}",
                    sql.SQL("UPDATE {} SET {} = {} WHERE {}").format(t, tcol, tcol, by_pk),
                    (doc,),
                    must_fail=False,
                )
                _attempt(
                    conn,
                    out,
                    f"delete {what}",
                    sql.SQL("DELETE FROM {} WHERE {}").format(t, by_pk),
                    (doc,),
                    must_fail=False,
                )
                _attempt(
                    conn,
                    out,
                    f"insert forged copy of {what}",
                    sql.SQL(
                        "INSERT INTO {} ({}) SELECT {} FROM jsonb_populate_record(NULL::{}, %s::jsonb)"
                    ).format(t, cols, cols, t),
                    (json.dumps(_forge(row, table, col, key)),),
                    must_fail=True,
                )
            for row in own_rows:
                _attempt(
                    conn,
                    out,
                    f"move own {table} {row_key(row, pk)} into victim",
                    sql.SQL("UPDATE {} SET {} = %s WHERE {}").format(t, tcol, by_pk),
                    (victim, json.dumps(row)),
                    must_fail=False,
                )
    return out


def row_key(row: dict[str, Any], cols: list[str]) -> str:
    return ",".join(f"{c}={row.get(c)}" for c in cols)


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def visible(
    conn: Conn, enter: EnterScope, table: str, cols: str = "id", *, private: bool = False
) -> set[Any] | None:
    """What `enter` can see of a table or view: a set of `cols` values, or None when the
    role has no privilege at all. `private`: leave out the rows public by design."""
    with scoped(conn, enter):
        try:
            with conn.transaction():
                q = sql.SQL("SELECT {} FROM {} WHERE {}").format(
                    sql.SQL(cols),
                    qualified(table),
                    not_public(table) if private else sql.SQL("TRUE"),
                )
                return {r[0] if len(r) == 1 else tuple(r) for r in conn.execute(q).fetchall()}
        except psycopg.Error as exc:
            if denied(exc):
                return None
            raise
