"""Deleting a tenant or a user removes their rows from every table, found from the catalog
(so a table added later is covered without changing this test), and nothing of anyone else."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

import llmbase
from llmbase import ops, retention
from llmbase.db import url_with_database
from llmbase.errors import NotFound, ValidationError
from tenancy._tenancy import Seeded, build_seeded, clone, drop_database

Conn = psycopg.Connection[Any]
OLD_DAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=120)


# -- the catalog, read here independently of the code under test -------------------------------
def all_tables(conn: Conn, column: str = "tenant_id") -> list[tuple[str, str]]:
    """Every table, partitioned table and partition with `column`, in llmbase and the archive."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped"
        " WHERE n.nspname IN ('llmbase', 'llmbase_archive') AND c.relkind IN ('r', 'p')"
        " ORDER BY 1, 2",
        (column,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def counts(conn: Conn, where: str, params: tuple[Any, ...], column: str = "tenant_id") -> dict[str, int]:
    """Rows matching `where` in every table that has `column` (ground truth: superuser)."""
    out: dict[str, int] = {}
    for schema, name in all_tables(conn, column):
        q = sql.SQL("SELECT count(*) FROM {} WHERE ").format(sql.Identifier(schema, name)) + sql.SQL(where)
        row = conn.execute(q, params).fetchone()
        assert row is not None
        out[f"{schema}.{name}"] = int(row[0])
    return out


def nonzero(c: dict[str, int]) -> dict[str, int]:
    return {t: n for t, n in c.items() if n}


def roots(conn: Conn, column: str = "tenant_id") -> set[str]:
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped"
        " WHERE n.nspname IN ('llmbase', 'llmbase_archive') AND c.relkind IN ('r', 'p')"
        " AND NOT c.relispartition",
        (column,),
    ).fetchall()
    return {r[0] for r in rows}


# -- seeding: every feature, for two tenants ---------------------------------------------------
def _extra(conn: Conn, s: Seeded) -> None:
    """What the shared seeding does not cover yet: cache, limits and budgets (when those
    tables exist) and an archived request-log partition in llmbase_archive."""

    def scope(tenant: UUID, user: UUID | None) -> None:
        conn.execute(
            "SELECT set_config('role', 'llmbase_app', true), set_config('llmbase.tenant_id', %s, true),"
            " set_config('llmbase.user_id', %s, true)",
            (str(tenant), "" if user is None else str(user)),
        )

    def missing(table: str) -> bool:
        """The table exists and the shared seeding left it empty for this tenant."""
        if conn.execute("SELECT to_regclass(%s)", (f"llmbase.{table}",)).fetchone() == (None,):
            return False
        q = sql.SQL("SELECT NOT EXISTS (SELECT FROM {} WHERE tenant_id = %s)").format(
            sql.Identifier("llmbase", table)
        )
        return conn.execute(q, (s.tenant,)).fetchone() == (True,)

    if missing("cache_entries"):
        with conn.transaction():
            for user in (s.u1, s.u2):
                conn.execute(
                    "INSERT INTO llmbase.cache_entries (tenant_id, key_hash, params_hash, response,"
                    " expires_at) VALUES (%s, sha256(%s::bytea), sha256('p'::bytea), %s::jsonb,"
                    " now() + interval '1 day')",
                    (s.tenant, str(user).encode(), json.dumps({"secret": s.slug})),
                )
    if missing("rate_limits") and missing("rate_limit_counters"):
        with conn.transaction():
            scope(s.tenant, None)
            for user in (s.u1, s.u2):
                conn.execute(
                    "INSERT INTO llmbase.rate_limits (subject, user_id, metric, period, limit_value)"
                    " VALUES ('user', %s, 'requests', 'day', 100)",
                    (user,),
                )
            conn.execute(
                "INSERT INTO llmbase.rate_limits (subject, per_user, metric, period, limit_value)"
                " VALUES ('tenant', true, 'tokens', 'day', 100000)"
            )
        for user in (s.u1, s.u2):
            with conn.transaction():
                scope(s.tenant, user)
                conn.execute("SELECT * FROM llmbase.consume_limits(1, 10)").fetchall()
    if missing("budgets") and missing("budget_reservations"):
        with conn.transaction():
            scope(s.tenant, None)
            for user in (s.u1, s.u2):
                conn.execute("INSERT INTO llmbase.budgets (user_id, cap_usd) VALUES (%s, 10)", (user,))
        for user in (s.u1, s.u2):
            with conn.transaction():
                scope(s.tenant, user)
                conn.execute("SELECT * FROM llmbase.reserve_budget(%s, 0.5)", (uuid.uuid4(),)).fetchall()
    with conn.transaction():
        for owner in (s.u1, s.u2, None):
            conn.execute(
                "INSERT INTO llmbase.requests (tenant_id, created_at, id, request_type, user_id, model)"
                " VALUES (%s, %s, %s, 'chat', %s, 'old-model')",
                (s.tenant, OLD_DAY, uuid.uuid4(), owner),
            )


def build(server_url: str, template: str) -> tuple[str, Seeded, Seeded]:
    name, a, b = build_seeded(server_url, template)
    url = url_with_database(server_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT llmbase.ensure_request_partitions(%s, %s)", (OLD_DAY.date(), OLD_DAY.date()))
        _extra(conn, a)
        _extra(conn, b)
    retention.archive_requests(url, "90d")  # the old day moves to llmbase_archive
    return name, a, b


@pytest.fixture(scope="module")
def seeded(server_url: str, template_db: str) -> Iterator[tuple[str, Seeded, Seeded]]:
    built = build(server_url, template_db)
    yield built
    drop_database(server_url, built[0])


@pytest.fixture
def url(server_url: str, seeded: tuple[str, Seeded, Seeded]) -> Iterator[str]:
    with clone(server_url, seeded[0]) as u:
        yield u


@pytest.fixture
def two(seeded: tuple[str, Seeded, Seeded]) -> tuple[Seeded, Seeded]:
    return seeded[1], seeded[2]


@pytest.fixture
def su(url: str) -> Iterator[Conn]:
    """Superuser connection (bypasses RLS): the ground truth."""
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def _chunk_partitions(conn: Conn, tenant: UUID) -> list[str]:
    rows = conn.execute(
        "SELECT partition_name FROM llmbase.collections WHERE tenant_id = %s", (tenant,)
    ).fetchall()
    return [r[0] for r in rows]


def _exists(conn: Conn, rel: str) -> bool:
    return conn.execute("SELECT to_regclass(%s)", (rel,)).fetchone() != (None,)


# -- the required test ------------------------------------------------------------------------
def test_deleting_a_tenant_leaves_none_of_its_rows_in_any_table(
    url: str, su: Conn, two: tuple[Seeded, Seeded]
) -> None:
    a, b = two
    before_a = counts(su, "tenant_id = %s", (a.tenant,))
    before_b = nonzero(counts(su, "tenant_id = %s", (b.tenant,)))
    # The seeding reaches every tenant table (a table nobody seeds would prove nothing).
    empty = sorted(t for t in roots(su) if before_a.get(t, 0) == 0)
    assert empty == [], f"seed these tables in tests/test_delete.py: {empty}"
    assert any(s == "llmbase_archive" for s, _ in all_tables(su)), "an archived partition exists"
    parts_a, parts_b = _chunk_partitions(su, a.tenant), _chunk_partitions(su, b.tenant)
    assert parts_a and parts_b

    res = ops.delete_tenant(url, a.tenant)

    after_a = counts(su, "tenant_id = %s", (a.tenant,))
    assert {t: n for t, n in after_a.items() if n} == {}
    assert su.execute("SELECT count(*) FROM llmbase.tenants WHERE id = %s", (a.tenant,)).fetchone() == (0,)
    # Chunk partitions of its collections are dropped, not left empty.
    assert not any(_exists(su, f"llmbase.{p}") for p in parts_a)
    assert all(_exists(su, f"llmbase.{p}") for p in parts_b)
    # The other tenant is untouched.
    assert nonzero(counts(su, "tenant_id = %s", (b.tenant,))) == before_b
    # Per-table counts: what the tenant had (partitions and archived days in their table).
    assert res.kind == "tenant" and res.id == a.tenant and not res.dry_run
    assert res.dropped_partitions == sorted(parts_a)
    for table in ("llmbase.requests", "llmbase.conversations", "llmbase.messages", "llmbase.users"):
        assert res.counts[table] == before_a[table]
    assert res.counts["llmbase.chunks"] == before_a["llmbase.chunks"]
    assert "llmbase.audit_log" not in res.counts
    # Audited in operator context: the entry is not a row of the deleted tenant.
    entry = su.execute(
        "SELECT tenant_id, actor, object_id, details FROM llmbase.audit_log WHERE id = %s", (res.audit_id,)
    ).fetchone()
    assert entry is not None
    assert entry[0] is None and entry[1] == "operator" and entry[2] == str(a.tenant)
    assert entry[3]["counts"]["llmbase.requests"] == before_a["llmbase.requests"]
    assert su.execute(
        "SELECT count(*) FROM llmbase.deleted_subjects WHERE kind = 'tenant' AND subject = %s", (a.tenant,)
    ).fetchone() == (1,)


def test_deleting_a_user_removes_their_rows_and_keeps_the_tenants(
    url: str, su: Conn, two: tuple[Seeded, Seeded]
) -> None:
    a, b = two
    mine = counts(su, "tenant_id = %s AND user_id = %s", (a.tenant, a.u1), "user_id")
    empty = sorted(t for t in roots(su, "user_id") if mine.get(t, 0) == 0)
    # Tables with a user_id column the seeding gives no row of u1 (tenant-level data only).
    assert set(empty) <= {"llmbase.request_rollups_tenant"}, empty
    other = counts(su, "tenant_id = %s AND user_id = %s", (a.tenant, a.u2), "user_id")
    before_b = counts(su, "tenant_id = %s", (b.tenant,))
    shared = su.execute(
        "SELECT count(*) FROM llmbase.conversations WHERE tenant_id = %s AND user_id IS NULL", (a.tenant,)
    ).fetchone()

    usage = (
        "SELECT (SELECT count(*) FROM llmbase.rate_limit_counters WHERE tenant_id = %(t)s AND subject_key = %(u)s)"
        " + (SELECT count(*) FROM llmbase.budget_periods WHERE tenant_id = %(t)s AND subject_key = %(u)s)"
        " + (SELECT count(*) FROM llmbase.budget_reservations WHERE tenant_id = %(t)s AND subject_key = %(u)s)"
    )
    row = su.execute(usage, {"t": a.tenant, "u": a.u1}).fetchone()
    assert row is not None and row[0] >= 3  # u1's limit and budget usage (keyed by subject_key)

    res = ops.delete_user(url, a.u1)

    assert su.execute(usage, {"t": a.tenant, "u": a.u1}).fetchone() == (0,)
    assert su.execute(usage, {"t": a.tenant, "u": a.u2}).fetchone() is not None

    assert res.kind == "user" and res.tenant_id == a.tenant
    left = counts(su, "tenant_id = %s AND user_id = %s", (a.tenant, a.u1), "user_id")
    assert {t: n for t, n in left.items() if n} == {}
    assert su.execute("SELECT count(*) FROM llmbase.users WHERE id = %s", (a.u1,)).fetchone() == (0,)
    assert counts(su, "tenant_id = %s AND user_id = %s", (a.tenant, a.u2), "user_id") == other
    assert counts(su, "tenant_id = %s", (b.tenant,)) == before_b
    assert (
        su.execute(
            "SELECT count(*) FROM llmbase.conversations WHERE tenant_id = %s AND user_id IS NULL", (a.tenant,)
        ).fetchone()
        == shared
    )
    assert res.counts["llmbase.users"] == 1
    assert res.counts["llmbase.requests"] == mine["llmbase.requests"]
    # Audited in the tenant's log, naming the user by id only; the user's earlier entries
    # are redacted.
    entry = su.execute(
        "SELECT tenant_id, action, object_id, before, details FROM llmbase.audit_log WHERE id = %s",
        (res.audit_id,),
    ).fetchone()
    assert entry is not None
    assert entry[:4] == (a.tenant, "user.delete", str(a.u1), None)
    assert "u1@" not in json.dumps(entry[4])
    leaked = su.execute(
        "SELECT count(*) FROM llmbase.audit_log WHERE tenant_id = %s AND (before::text LIKE %s"
        " OR after::text LIKE %s)",
        (a.tenant, "%u1@acme%", "%u1@acme%"),
    ).fetchone()
    assert leaked == (0,)


def test_dry_run_counts_exactly_and_changes_nothing(url: str, su: Conn, two: tuple[Seeded, Seeded]) -> None:
    a, _ = two
    before = counts(su, "tenant_id = %s", (a.tenant,))
    audit = su.execute("SELECT count(*) FROM llmbase.audit_log").fetchone()
    dry = ops.delete_tenant(url, a.slug, dry_run=True)
    assert dry.dry_run and dry.total > 0
    assert counts(su, "tenant_id = %s", (a.tenant,)) == before
    assert su.execute("SELECT count(*) FROM llmbase.audit_log").fetchone() == audit
    assert all(_exists(su, f"llmbase.{p}") for p in _chunk_partitions(su, a.tenant))
    real = ops.delete_tenant(url, a.slug)
    assert real.counts == dry.counts
    with pytest.raises(NotFound):  # the tenant and its users are gone
        ops.delete_user(url, "acme-u1", tenant=a.tenant, dry_run=True)


def test_user_dry_run_matches_the_real_run(url: str, su: Conn, two: tuple[Seeded, Seeded]) -> None:
    a, _ = two
    dry = ops.delete_user(url, "acme-u2", tenant="acme", dry_run=True)
    assert su.execute("SELECT count(*) FROM llmbase.users WHERE id = %s", (a.u2,)).fetchone() == (1,)
    real = ops.delete_user(url, a.u2, tenant=a.tenant)
    assert real.counts == dry.counts and real.counts["llmbase.users"] == 1


@pytest.mark.parametrize("bad", [42, None, b"abc", "", "x\x00y", "a" * 300, 1.5])
def test_bad_ids_are_rejected_and_nothing_is_deleted(
    url: str, su: Conn, two: tuple[Seeded, Seeded], bad: Any
) -> None:
    a, _ = two
    before = counts(su, "tenant_id = %s", (a.tenant,))
    with pytest.raises(ValidationError):
        ops.delete_tenant(url, bad)
    with pytest.raises(ValidationError):
        ops.delete_user(url, bad, tenant=a.tenant)
    assert counts(su, "tenant_id = %s", (a.tenant,)) == before


def test_unknown_and_foreign_ids_are_not_found(url: str, su: Conn, two: tuple[Seeded, Seeded]) -> None:
    a, b = two
    before = counts(su, "tenant_id = %s", (a.tenant,))
    with pytest.raises(NotFound):
        ops.delete_tenant(url, uuid.uuid4())
    with pytest.raises(NotFound):
        ops.delete_tenant(url, "no-such-tenant")
    with pytest.raises(NotFound):
        ops.delete_user(url, uuid.uuid4())
    with pytest.raises(NotFound):  # A's user named with B as its tenant
        ops.delete_user(url, a.u1, tenant=b.tenant)
    with pytest.raises(NotFound):
        ops.delete_user(url, "acme-u1", tenant=b.slug)
    with pytest.raises(ValidationError) as e:  # an external id alone is ambiguous
        ops.delete_user(url, "acme-u1")
    assert e.value.field == "tenant"
    assert counts(su, "tenant_id = %s", (a.tenant,)) == before


def test_maintain_removes_records_that_arrive_after_the_deletion(
    url: str, su: Conn, two: tuple[Seeded, Seeded]
) -> None:
    a, b = two
    ops.delete_tenant(url, a.tenant)
    ops.delete_user(url, b.u1)
    before_b2 = counts(su, "tenant_id = %s AND user_id = %s", (b.tenant, b.u2), "user_id")
    # A writer's queue still held records of both when they were deleted.
    now = datetime.now(UTC)
    for tenant, user in ((a.tenant, None), (b.tenant, b.u1)):
        su.execute(
            "INSERT INTO llmbase.requests (tenant_id, created_at, id, request_type, user_id)"
            " VALUES (%s, %s, %s, 'chat', %s)",
            (tenant, now, uuid.uuid4(), user),
        )
    plan = ops.maintain(url, dry_run=True)
    orphan = [x for x in plan.actions if x.task == "orphans"]
    assert len(orphan) == 1 and "llmbase.requests 2" in orphan[0].reason
    done = ops.maintain(url)
    assert [x.result for x in done.actions if x.task == "orphans"] == [{"llmbase.requests": 2}]
    assert counts(su, "tenant_id = %s", (a.tenant,))["llmbase.requests"] == 0
    assert counts(su, "tenant_id = %s AND user_id = %s", (b.tenant, b.u1), "user_id")["llmbase.requests"] == 0
    assert counts(su, "tenant_id = %s AND user_id = %s", (b.tenant, b.u2), "user_id") == before_b2


def test_feedback_without_a_rating_can_change_and_go(db_url: str) -> None:
    """0009 fixes 0002's summary trigger: score- or comment-only feedback could be neither
    changed nor deleted (nor cascade with its user or tenant)."""
    c = llmbase.connect(db_url, migrate=False)
    try:
        alice = c.user("alice")
        conv = alice.conversations.create(title="x")
        msg = alice.conversations.add_message(conv.id, role="assistant", content="answer")
        alice.feedback.rate(msg.id, score=0.5)
        alice.feedback.rate(msg.id, score=0.75, comment="better")  # an update of the row
        with psycopg.connect(db_url) as su:
            row = su.execute(
                "SELECT thumbs_up, thumbs_down, score_count, score_sum, comment_count, feedback_count"
                " FROM llmbase.feedback_summary WHERE message_id = %s",
                (msg.id,),
            ).fetchone()
            assert row == (0, 0, 1, 0.75, 1, 1)
        uid = alice.scope().user_id
        assert uid is not None
        res = ops.delete_user(db_url, uid)
        assert res.counts["llmbase.feedback"] == 1
    finally:
        c.close()
