"""Retention of the request log: whole daily partitions leave the hot table, never a mass
DELETE; bodies can be dropped earlier while every metric stays.

- `archive_requests(url, "90d")` detaches each partition of llmbase.requests that lies
  entirely before the cutoff and moves it to the schema `llmbase_archive` (no access for
  the application role), or drops it with `drop=True`. The rollups are not touched, so
  every rollup-based report keeps its figures for the archived days.
- `drop_bodies(url, "30d")` sets request_body and response_body to NULL for calls older
  than the cutoff, partition by partition, in short batches (one transaction each).

Both run as the schema owner in operator scope; `dry_run=True` only reports the plan.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg import errors as pgerr
from psycopg import sql

from .db import operator_connection
from .errors import ConflictError, ValidationError
from .reports._time import When, parse_when

__all__ = [
    "ARCHIVE_SCHEMA",
    "ArchiveResult",
    "BodiesResult",
    "Partition",
    "archive_requests",
    "drop_bodies",
    "partitions",
]

T = TypeVar("T")

#: Where archived partitions go: outside the `llmbase` schema, no grants to the app role.
ARCHIVE_SCHEMA = "llmbase_archive"

#: progress(done, total, label): called as work advances (partitions or rows).
Progress = Callable[[int, int, str], None]

_ADMIN = "SELECT set_config('llmbase.admin', 'on', true)"

# Partitions of llmbase.requests with their bounds (read back in the session's own time
# zone, so the text form of the bound round-trips exactly), oldest first. Unbounded
# (MINVALUE/MAXVALUE) or default partitions have NULL bounds and are never touched.
_PARTITIONS = """
SELECT c.relname AS name,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS lower,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS upper,
       greatest(c.reltuples, 0)::bigint AS rows, pg_total_relation_size(c.oid) AS bytes
  FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'llmbase.requests'::regclass
 ORDER BY upper NULLS LAST, c.relname"""

_ENSURE_SCHEMA = sql.SQL(
    "CREATE SCHEMA IF NOT EXISTS {s};"
    " REVOKE ALL ON SCHEMA {s} FROM PUBLIC;"
    " COMMENT ON SCHEMA {s} IS 'Detached partitions of llmbase.requests (llmbase archive).'"
)

_BODIES_COUNT = (
    "SELECT count(*) FROM llmbase.requests WHERE created_at >= %s AND created_at < %s"
    " AND (request_body IS NOT NULL OR response_body IS NOT NULL)"
)

# One batch: the next `n` rows of the range in primary-key order (keyset), bodies cleared
# where present; returns how many were cleared and the batch's last key.
_BODIES_BATCH = """
WITH k AS (
    SELECT tenant_id, created_at, id FROM llmbase.requests
     WHERE created_at >= %s AND created_at < %s AND (tenant_id, created_at, id) > (%s, %s, %s)
     ORDER BY tenant_id, created_at, id
     LIMIT %s),
u AS (
    UPDATE llmbase.requests AS r SET request_body = NULL, response_body = NULL
      FROM k
     WHERE r.tenant_id = k.tenant_id AND r.created_at = k.created_at AND r.id = k.id
       AND (r.request_body IS NOT NULL OR r.response_body IS NOT NULL)
    RETURNING 1)
SELECT (SELECT count(*) FROM u) AS cleared, (SELECT count(*) FROM k) AS seen,
       l.tenant_id, l.created_at, l.id
  FROM (SELECT tenant_id, created_at, id FROM k
         ORDER BY tenant_id DESC, created_at DESC, id DESC LIMIT 1) AS l"""

_NIL = UUID(int=0)  # below every tenant id: the first batch starts at the range's beginning


@dataclass(frozen=True)
class Partition:
    """A daily partition of llmbase.requests: [lower, upper); rows is the planner's estimate."""

    name: str
    lower: datetime
    upper: datetime
    rows: int
    bytes: int


@dataclass(frozen=True)
class ArchiveResult:
    cutoff: datetime
    action: str  # 'archive' (moved to llmbase_archive) or 'drop'
    dry_run: bool
    partitions: list[Partition] = field(default_factory=list)
    moved_to: dict[str, str] = field(default_factory=dict)  # partition -> archived table


@dataclass(frozen=True)
class BodiesResult:
    cutoff: datetime
    dry_run: bool
    rows_with_bodies: dict[str, int] = field(default_factory=dict)  # per partition, before
    cleared: int = 0


def _cutoff(older_than: When) -> datetime:
    cutoff = parse_when(older_than, field="older_than")
    if cutoff is None:
        raise ValidationError("a cutoff is required", field="older_than")
    return cutoff


def partitions(conn: psycopg.Connection[Any]) -> list[Partition]:
    """The bounded partitions of llmbase.requests, oldest first."""
    rows = conn.execute(_PARTITIONS).fetchall()
    return [Partition(*r) for r in rows if r[1] is not None and r[2] is not None]


def _taken(conn: psycopg.Connection[Any], schema: str, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    ).fetchone()
    return row is not None


def _free_name(conn: psycopg.Connection[Any], name: str) -> str:
    """`name`, or name_2, name_3 ... when the archive already holds a relation of that name."""
    candidate, n = name, 1
    while _taken(conn, ARCHIVE_SCHEMA, candidate) or (
        candidate != name and _taken(conn, "llmbase", candidate)
    ):
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _make_room(conn: psycopg.Connection[Any], name: str) -> str:
    """Rename the detached table llmbase.<name> and its indexes where their names are
    taken in the archive schema (a day archived before, re-created by a late record)."""
    target = _free_name(conn, name)
    if target != name:
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier("llmbase", name), sql.Identifier(target)
            )
        )
    indexes = conn.execute(
        "SELECT indexrelid::regclass::text, c.relname FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass",
        (f"llmbase.{target}",),
    ).fetchall()
    for _, index in indexes:
        if _taken(conn, ARCHIVE_SCHEMA, index):
            fresh = _free_name(conn, index.replace(name, target, 1) if index.startswith(name) else index)
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier("llmbase", index), sql.Identifier(fresh)
                )
            )
    return target


def archive_requests(
    url_or_conn: str | psycopg.Connection[Any],
    older_than: When,
    *,
    drop: bool = False,
    dry_run: bool = False,
    lock_timeout_ms: int = 2_000,
    attempts: int = 5,
    progress: Progress | None = None,
) -> ArchiveResult:
    """Move (or with `drop`, drop) every partition of llmbase.requests whose whole range
    lies before the cutoff ("90d" = 90 days ago, or a datetime). One short transaction
    per partition: DETACH PARTITION, then SET SCHEMA llmbase_archive or DROP TABLE.
    The rollups stay, so rollup-based reports are unchanged.

    DETACH needs a brief exclusive lock on llmbase.requests; waiting for it would queue
    every reader and the writer behind it, so each try waits at most `lock_timeout_ms`
    and is retried (`attempts` times, backing off) before giving up with ConflictError."""
    cutoff = _cutoff(older_than)
    with operator_connection(url_or_conn) as conn:
        with conn.transaction():
            old = [p for p in partitions(conn) if p.upper <= cutoff]
        result = ArchiveResult(cutoff, "drop" if drop else "archive", dry_run, old)
        if dry_run or not old:
            return result
        if not drop:
            with conn.transaction():
                conn.execute(_ENSURE_SCHEMA.format(s=sql.Identifier(ARCHIVE_SCHEMA)))
        for done, part in enumerate(old):
            if progress:
                progress(done, len(old), part.name)
            moved = _retry(functools.partial(_move, conn, part, drop, lock_timeout_ms), attempts, part.name)
            if moved is not None:
                result.moved_to[part.name] = moved
        if progress:
            progress(len(old), len(old), "done")
    return result


def _move(conn: psycopg.Connection[Any], part: Partition, drop: bool, lock_timeout_ms: int) -> str | None:
    """Detach one partition and archive or drop it; returns the archived table's name."""
    table = sql.Identifier("llmbase", part.name)
    with conn.transaction():
        conn.execute(_ADMIN)
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{lock_timeout_ms}ms")))
        conn.execute(sql.SQL("ALTER TABLE llmbase.requests DETACH PARTITION {}").format(table))
        if drop:
            conn.execute(sql.SQL("DROP TABLE {}").format(table))
            return None
        target = _make_room(conn, part.name)
        conn.execute(
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier("llmbase", target), sql.Identifier(ARCHIVE_SCHEMA)
            )
        )
        return f"{ARCHIVE_SCHEMA}.{target}"


def _retry(step: Callable[[], T], attempts: int, what: str) -> T:
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return step()
        except pgerr.LockNotAvailable:
            if attempt >= attempts:
                raise ConflictError(
                    f"{what}: llmbase.requests stayed locked by other sessions; try again later"
                ) from None
            time.sleep(min(5.0, 0.5 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def drop_bodies(
    url_or_conn: str | psycopg.Connection[Any],
    older_than: When,
    *,
    batch_size: int = 5000,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> BodiesResult:
    """Set request_body and response_body to NULL for calls before the cutoff; every other
    column (tokens, cost, latency, status, ids, tags, metadata) stays. Works partition by
    partition in primary-key order, `batch_size` rows per transaction, so locks stay short
    and an interrupted run simply continues next time."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError("must be a positive integer", field="batch_size")
    cutoff = _cutoff(older_than)
    with operator_connection(url_or_conn) as conn:
        with conn.transaction():
            ranges = [(p.name, p.lower, min(p.upper, cutoff)) for p in partitions(conn) if p.lower < cutoff]
        counts: dict[str, int] = {}
        for name, lo, hi in ranges:
            with conn.transaction():
                conn.execute(_ADMIN)
                row = conn.execute(_BODIES_COUNT, (lo, hi)).fetchone()
            if row and row[0]:
                counts[name] = int(row[0])
        total = sum(counts.values())
        if dry_run or not total:
            return BodiesResult(cutoff, dry_run, counts)
        cleared = 0
        for name, lo, hi in ranges:
            if name not in counts:
                continue
            key: tuple[Any, ...] = (_NIL, lo, _NIL)
            while True:
                if progress:
                    progress(cleared, total, name)
                with conn.transaction():
                    conn.execute(_ADMIN)
                    row = conn.execute(_BODIES_BATCH, (lo, hi, *key, batch_size)).fetchone()
                if row is None:
                    break
                cleared += int(row[0])
                key = tuple(row[2:])
                if int(row[1]) < batch_size:
                    break
        if progress:
            progress(total, total, "done")
    return BodiesResult(cutoff, False, counts, cleared)
