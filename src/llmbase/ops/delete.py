"""Deleting a tenant or a user: every row, in every table, in one transaction.

The tables come from the catalog (`llmbase.tenant_tables()`): tables with a foreign key to
the tenant or user go by cascade, and every table with a `tenant_id` (and, for a user, a
`user_id`) column is then swept, including the partitioned request log, its rollups,
iteration rollups, the retrieval log, dead letters, the cache and counters, and archived
request-log partitions in `llmbase_archive`. A tenant's document chunks are dropped with
their per-collection partitions (not deleted row by row). The tenant's audit entries are
erased (`llmbase.erase_audit_tenant`; a user's are redacted by `erase_audit_user`), then
the deletion itself is recorded with `llmbase.audit_event('tenant.delete' | 'user.delete')`
in operator context (an operator-level entry for a tenant), with the per-table counts.

Counts come from the transaction's own statistics (pg_stat_xact_user_tables), so rows that
went by cascade or trigger are counted in their own table. A dry run does the same work
and rolls it back: its counts are exact, and it takes the same locks while it runs.

After the deletion a tombstone in `llmbase.deleted_subjects` lets `llmbase maintain` remove
records that were in flight (queued by a writer) and arrived after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from ..errors import NotFound, ValidationError
from ._common import Progress, Target, admin, connect, parse_uuid, resolve_tenant
from .catalog import ERASED_BY_FUNCTION, TenantTable, tenant_tables

__all__ = ["DeleteResult", "delete_tenant", "delete_user"]


@dataclass(frozen=True)
class DeleteResult:
    kind: str  # 'tenant' or 'user'
    id: UUID
    tenant_id: UUID
    dry_run: bool
    #: rows removed per table (schema.table; partitions counted in their parent)
    counts: dict[str, int] = field(default_factory=dict)
    #: chunk partitions dropped with the tenant's collections
    dropped_partitions: list[str] = field(default_factory=list)
    #: audit entries erased (tenant) or redacted (user)
    audit_entries: int = 0
    audit_id: UUID | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


_XACT_DELETES = """
SELECT coalesce(pn.nspname || '.' || pc.relname, s.schemaname || '.' || s.relname) AS tbl,
       sum(s.n_tup_del)::bigint
  FROM pg_stat_xact_user_tables s
  LEFT JOIN pg_class pc ON pc.oid = pg_partition_root(s.relid) AND pc.oid <> s.relid
  LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
 WHERE s.schemaname IN ('llmbase', 'llmbase_archive') AND s.n_tup_del > 0
 GROUP BY 1"""


def _deletes(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in conn.execute(_XACT_DELETES).fetchall()}


def _has_function(conn: psycopg.Connection[Any], signature: str) -> bool:
    row = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (signature,)).fetchone()
    return bool(row and row[0])


def _bypasses_rls(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    return bool(row and row[0])


Where = sql.Composable | Callable[[TenantTable], sql.Composable]


def _where(where: Where, t: TenantTable) -> sql.Composable:
    return where(t) if callable(where) else where


def _sweep(
    conn: psycopg.Connection[Any],
    tables: list[TenantTable],
    where: Where,
    params: tuple[Any, ...],
    progress: Progress | None,
    step: int,
    steps: int,
) -> None:
    """DELETE ... WHERE <where> from every root table (partitions go through their parent).
    Archived partitions in llmbase_archive have no policies: the owner lifts FORCE RLS for
    the statement (in this transaction) unless it bypasses RLS anyway."""
    lift = not _bypasses_rls(conn)
    for t in tables:
        if progress:
            progress(step, steps, t.qualified)
        step += 1
        if not t.root or t.qualified in ERASED_BY_FUNCTION:
            continue
        relax = lift and t.schema == "llmbase_archive"
        if relax:
            conn.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(t.ident))
        conn.execute(sql.SQL("DELETE FROM {} WHERE ").format(t.ident) + _where(where, t), params)
        if relax:
            conn.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(t.ident))


def _remaining(
    conn: psycopg.Connection[Any], tables: list[TenantTable], where: Where, params: tuple[Any, ...]
) -> dict[str, int]:
    left: dict[str, int] = {}
    for t in tables:
        if not t.root or t.qualified in ERASED_BY_FUNCTION:
            continue
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE ").format(t.ident) + _where(where, t), params
        ).fetchone()
        if row and row[0]:
            left[t.qualified] = int(row[0])
    return left


def _idle(conn: psycopg.Connection[Any]) -> None:
    """The work must be a transaction of its own: the counts read its own statistics."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValidationError("the connection has a transaction open", field="target")


def delete_tenant(
    target: Target, tenant: UUID | str, *, dry_run: bool = False, progress: Progress | None = None
) -> DeleteResult:
    """Delete a tenant (id or slug) and every row it owns, in one transaction."""
    with connect(target) as conn:
        _idle(conn)
        with conn.transaction() as tx:
            admin(conn)
            # one summary entry (below) instead of row entries of the audit triggers
            conn.execute("SELECT set_config('llmbase.audit_rows', 'off', true)")
            tid = resolve_tenant(conn, tenant)
            row = conn.execute(
                "SELECT to_jsonb(t) FROM llmbase.tenants t WHERE id = %s FOR UPDATE", (tid,)
            ).fetchone()
            if row is None:
                raise NotFound("tenant", tenant)
            before = row[0]
            tables = tenant_tables(conn)
            steps = len(tables) + 3
            # 1. The tenant's chunk partitions go whole.
            if progress:
                progress(0, steps, "chunk partitions")
            dropped: list[str] = []
            chunk_rows = 0
            for (part,) in conn.execute(
                "SELECT c.partition_name FROM llmbase.collections c WHERE c.tenant_id = %s"
                " AND to_regclass('llmbase.' || quote_ident(c.partition_name)) IS NOT NULL"
                " ORDER BY 1",
                (tid,),
            ).fetchall():
                ident = sql.Identifier("llmbase", part)
                n = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
                chunk_rows += int(n[0]) if n else 0
                conn.execute(sql.SQL("DROP TABLE {}").format(ident))
                dropped.append(part)
            # 2. The tenant row: everything with a foreign key to it goes by cascade.
            if progress:
                progress(1, steps, "llmbase.tenants")
            conn.execute("DELETE FROM llmbase.tenants WHERE id = %s", (tid,))
            # 3. Every table with a tenant_id column, whatever its keys.
            where = sql.SQL("tenant_id = %s")
            _sweep(conn, tables, where, (tid,), progress, 2, steps)
            # 4. The audit log: the tenant's entries are erased (the function records nothing).
            if progress:
                progress(steps - 1, steps, "audit log")
            erased = 0
            if _has_function(conn, "llmbase.erase_audit_tenant(uuid)"):
                r = conn.execute("SELECT llmbase.erase_audit_tenant(%s)", (tid,)).fetchone()
                erased = int(r[0]) if r and r[0] is not None else 0
            left = _remaining(conn, tables, where, (tid,))
            if left:
                raise RuntimeError(f"rows of tenant {tid} remain after deletion: {left}")
            counts = _deletes(conn)
            counts.pop("llmbase.audit_log", None)
            if dropped:
                counts["llmbase.chunks"] = counts.get("llmbase.chunks", 0) + chunk_rows
            counts = dict(sorted(counts.items()))
            conn.execute(
                "INSERT INTO llmbase.deleted_subjects (kind, subject) VALUES ('tenant', %s)"
                " ON CONFLICT (kind, subject) DO UPDATE SET deleted_at = now()",
                (tid,),
            )
            audit_id = _audit(
                conn,
                "tenant.delete",
                "tenant",
                tid,
                before,
                {"counts": counts, "dropped_partitions": dropped, "audit_entries_erased": erased},
                None,
            )
            if progress:
                progress(steps, steps, "done")
            result = DeleteResult("tenant", tid, tid, dry_run, counts, dropped, erased, audit_id)
            if dry_run:
                raise psycopg.Rollback(tx)
        return result


def _find_user(
    conn: psycopg.Connection[Any], user: UUID | str, tenant: UUID | str | None
) -> tuple[UUID, UUID]:
    """(tenant_id, user_id) from a user id (its tenant found when not given), or from an
    external id with its tenant."""
    tid = resolve_tenant(conn, tenant) if tenant is not None else None
    uid = parse_uuid(user, field="user")
    if uid is not None:
        rows = conn.execute(
            "SELECT tenant_id, id FROM llmbase.users WHERE id = %s AND (%s::uuid IS NULL OR tenant_id = %s)",
            (uid, tid, tid),
        ).fetchall()
    elif tid is None:
        raise ValidationError("an external id needs its tenant (tenant=...)", field="tenant")
    else:
        rows = conn.execute(
            "SELECT tenant_id, id FROM llmbase.users WHERE tenant_id = %s AND external_id = %s",
            (tid, user),
        ).fetchall()
    if not rows:
        raise NotFound("user", user)
    if len(rows) > 1:
        raise ValidationError("this user id exists in several tenants: name the tenant", field="tenant")
    return rows[0][0], rows[0][1]


def delete_user(
    target: Target,
    user: UUID | str,
    *,
    tenant: UUID | str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> DeleteResult:
    """Delete a user (id, or external id with `tenant`) and every row with their user_id,
    in one transaction. Rows that cascade from theirs (messages and feedback in their
    conversations, chunks of their documents) go too; the tenant's other rows stay."""
    with connect(target) as conn:
        _idle(conn)
        with conn.transaction() as tx:
            admin(conn)
            # one summary entry (below) instead of row entries of the audit triggers
            conn.execute("SELECT set_config('llmbase.audit_rows', 'off', true)")
            tid, uid = _find_user(conn, user, tenant)
            conn.execute(
                "SELECT 1 FROM llmbase.users WHERE tenant_id = %s AND id = %s FOR UPDATE", (tid, uid)
            )
            tables = [t for t in tenant_tables(conn) if t.has_user_id]
            steps = len(tables) + 2
            if progress:
                progress(0, steps, "llmbase.users")
            conn.execute("DELETE FROM llmbase.users WHERE tenant_id = %s AND id = %s", (tid, uid))
            where = TenantTable.user_where
            _sweep(conn, tables, where, (tid, uid), progress, 1, steps)
            if progress:
                progress(steps - 1, steps, "audit log")
            redacted = 0
            if _has_function(conn, "llmbase.erase_audit_user(uuid,uuid)"):
                r = conn.execute("SELECT llmbase.erase_audit_user(%s, %s)", (tid, uid)).fetchone()
                redacted = int(r[0]) if r and r[0] is not None else 0
            left = _remaining(conn, tables, where, (tid, uid))
            if left:
                raise RuntimeError(f"rows of user {uid} remain after deletion: {left}")
            counts = _deletes(conn)
            counts.pop("llmbase.audit_log", None)
            counts = dict(sorted(counts.items()))
            conn.execute(
                "INSERT INTO llmbase.deleted_subjects (kind, subject, owner) VALUES ('user', %s, %s)"
                " ON CONFLICT (kind, subject) DO UPDATE SET deleted_at = now(), owner = EXCLUDED.owner",
                (uid, tid),
            )
            # The entry names the user by id only: no personal data outlives the deletion.
            audit_id = _audit(
                conn,
                "user.delete",
                "user",
                uid,
                None,
                {"counts": counts, "audit_entries_redacted": redacted},
                tid,
            )
            if progress:
                progress(steps, steps, "done")
            result = DeleteResult("user", uid, tid, dry_run, counts, [], redacted, audit_id)
            if dry_run:
                raise psycopg.Rollback(tx)
        return result


def _audit(
    conn: psycopg.Connection[Any],
    action: str,
    object_type: str,
    object_id: UUID,
    before: Any,
    details: dict[str, Any],
    tenant: UUID | None,
) -> UUID | None:
    """llmbase.audit_event(...) in operator scope; tenant None = an operator-level entry."""
    if not _has_function(conn, "llmbase.audit_event(text,text,text,jsonb,jsonb,jsonb,uuid)"):
        return None
    row = conn.execute(
        "SELECT llmbase.audit_event(%s, %s, %s, %s::jsonb, NULL, %s::jsonb, %s)",
        (
            action,
            object_type,
            str(object_id),
            None if before is None else json.dumps(before, default=str),
            json.dumps(details, default=str),
            tenant,
        ),
    ).fetchone()
    return row[0] if row else None
