"""`llmbase stats`: the seeds' monitoring queries, done properly.

Sizes are summed per table over its partitions (the request log's daily partitions, the
chunks' per-collection partitions); index usage is summed over the partitions of a
partitioned index; dead rows and (auto)vacuum / analyze times come from the statistics
collector; connections are grouped by state. Row counts are the statistics' live-row
estimates (exact counts would scan every table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .. import retention
from ._common import Target, admin, connect

__all__ = ["Stats", "stats"]


@dataclass(frozen=True)
class TableStat:
    schema: str
    name: str
    kind: str  # 'table', 'partitioned' (sizes summed over partitions) or 'archive' (llmbase_archive)
    partitions: int
    rows: int  # live rows (statistics estimate)
    table_bytes: int  # heap + TOAST
    index_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class IndexStat:
    table: str
    name: str
    method: str
    bytes: int
    scans: int
    unique: bool
    primary: bool
    #: never scanned since the statistics were reset, and not enforcing a unique key
    unused: bool


@dataclass(frozen=True)
class VacuumStat:
    table: str  # partitions are reported one by one (autovacuum works on them)
    live_rows: int
    dead_rows: int
    dead_ratio: float
    modified_since_analyze: int
    last_vacuum: datetime | None  # manual or auto, whichever is later
    last_analyze: datetime | None
    vacuum_count: int
    analyze_count: int


@dataclass(frozen=True)
class Connections:
    total: int  # client connections to this database
    cluster_total: int  # client connections to every database of the server
    max_connections: int
    by_state: dict[str, int]
    waiting_on_locks: int
    idle_in_transaction: int
    oldest_transaction_s: float | None


@dataclass(frozen=True)
class RequestLog:
    partitions: int
    oldest: date | None
    newest: date | None  # the last day with a partition (days ahead are created by maintain)
    rows: int
    bytes: int
    archived_partitions: int
    archived_bytes: int


@dataclass(frozen=True)
class Embeddings:
    collections: int
    documents: int
    chunks: int  # statistics estimate
    chunk_bytes: int
    vector_index_bytes: int


@dataclass(frozen=True)
class CacheStat:
    entries: int
    expired: int
    hits: int
    bytes: int


@dataclass(frozen=True)
class Stats:
    database: str
    server_version: str
    database_bytes: int
    collected_at: datetime
    stats_reset: datetime | None
    tables: list[TableStat] = field(default_factory=list)
    indexes: list[IndexStat] = field(default_factory=list)
    vacuum: list[VacuumStat] = field(default_factory=list)
    connections: Connections | None = None
    request_log: RequestLog | None = None
    embeddings: Embeddings | None = None
    cache: CacheStat | None = None

    @property
    def unused_indexes(self) -> list[IndexStat]:
        return [i for i in self.indexes if i.unused]


_DATABASE = """
SELECT current_database(), current_setting('server_version'), pg_database_size(current_database()),
       now(), (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database())"""

# Every table of llmbase that is not a partition, with sizes summed over its partition tree;
# the archive schema as one row.
_TABLES = """
WITH roots AS (
    SELECT c.oid, n.nspname, c.relname, c.relkind
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('llmbase', 'llmbase_archive') AND c.relkind IN ('r', 'p', 'm')
       AND NOT c.relispartition),
leaves AS (
    SELECT r.oid AS root, t.relid, t.isleaf, t.relid <> r.oid AS is_part
      FROM roots r, LATERAL pg_partition_tree(r.oid) t
     WHERE r.relkind = 'p'
    UNION ALL
    SELECT r.oid, r.oid, true, false FROM roots r WHERE r.relkind <> 'p'),
sized AS (
    SELECT l.root, count(*) FILTER (WHERE l.is_part AND l.isleaf) AS partitions,
           coalesce(sum(s.n_live_tup), 0)::bigint AS rows,
           coalesce(sum(pg_table_size(l.relid)) FILTER (WHERE l.isleaf), 0)::bigint AS table_bytes,
           coalesce(sum(pg_indexes_size(l.relid)) FILTER (WHERE l.isleaf), 0)::bigint AS index_bytes
      FROM leaves l LEFT JOIN pg_stat_user_tables s ON s.relid = l.relid
     GROUP BY l.root)
SELECT r.nspname AS schema, r.relname AS name,
       CASE WHEN r.nspname = 'llmbase_archive' THEN 'archive'
            WHEN r.relkind = 'p' THEN 'partitioned' ELSE 'table' END AS kind,
       s.partitions, s.rows, s.table_bytes, s.index_bytes
  FROM roots r JOIN sized s ON s.root = r.oid"""

# Indexes grouped by their root (a partitioned index sums its partitions' indexes; an index
# made on one partition only, like a collection's vector index, stands alone), per table root.
_INDEXES = """
WITH leaf AS (
    SELECT i.indexrelid, coalesce(pg_partition_root(i.indexrelid), i.indexrelid) AS iroot,
           coalesce(pg_partition_root(i.indrelid), i.indrelid) AS troot
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'llmbase' AND c.relkind = 'i')
SELECT tn.nspname || '.' || tc.relname AS table, ic.relname AS name, am.amname AS method,
       sum(pg_relation_size(l.indexrelid))::bigint AS bytes,
       coalesce(sum(s.idx_scan), 0)::bigint AS scans,
       bool_or(x.indisunique) AS unique, bool_or(x.indisprimary) AS primary
  FROM leaf l
  JOIN pg_class ic ON ic.oid = l.iroot
  JOIN pg_am am ON am.oid = ic.relam
  JOIN pg_index x ON x.indexrelid = l.indexrelid
  JOIN pg_class tc ON tc.oid = l.troot
  JOIN pg_namespace tn ON tn.oid = tc.relnamespace
  LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = l.indexrelid
 GROUP BY 1, 2, 3
 ORDER BY 1, 2"""

_VACUUM = """
SELECT schemaname || '.' || relname AS table, n_live_tup AS live_rows, n_dead_tup AS dead_rows,
       n_mod_since_analyze AS modified_since_analyze,
       greatest(last_vacuum, last_autovacuum) AS last_vacuum,
       greatest(last_analyze, last_autoanalyze) AS last_analyze,
       vacuum_count + autovacuum_count AS vacuum_count,
       analyze_count + autoanalyze_count AS analyze_count
  FROM pg_stat_user_tables
 WHERE schemaname = 'llmbase'
 ORDER BY n_dead_tup DESC, relname"""

_CONNECTIONS = """
SELECT count(*) FILTER (WHERE datname = current_database()) AS total,
       count(*) AS cluster_total,
       current_setting('max_connections')::int AS max_connections,
       count(*) FILTER (WHERE datname = current_database() AND wait_event_type = 'Lock') AS waiting,
       count(*) FILTER (WHERE datname = current_database() AND state LIKE 'idle in transaction%')
           AS idle_in_transaction,
       extract(epoch FROM max(now() - xact_start) FILTER (WHERE datname = current_database()
           AND pid <> pg_backend_pid()))::float8 AS oldest
  FROM pg_stat_activity WHERE backend_type = 'client backend'"""

_BY_STATE = """
SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND datname = current_database() GROUP BY 1 ORDER BY 1"""

_ARCHIVED = """
SELECT count(*), coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'llmbase_archive' AND c.relkind = 'r' AND c.relname LIKE 'requests\\_p%'"""

_EMBEDDINGS = """
SELECT (SELECT count(*) FROM llmbase.collections),
       coalesce((SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'llmbase.documents'::regclass), 0),
       coalesce((SELECT sum(s.n_live_tup) FROM pg_partition_tree('llmbase.chunks') t
                   JOIN pg_stat_user_tables s ON s.relid = t.relid), 0)::bigint,
       coalesce((SELECT sum(pg_total_relation_size(t.relid)) FROM pg_partition_tree('llmbase.chunks') t
                  WHERE t.isleaf), 0)::bigint,
       coalesce((SELECT sum(pg_relation_size(i.indexrelid))
                   FROM pg_partition_tree('llmbase.chunks') t
                   JOIN pg_index i ON i.indrelid = t.relid
                   JOIN pg_class ic ON ic.oid = i.indexrelid
                   JOIN pg_am am ON am.oid = ic.relam
                  WHERE t.isleaf AND am.amname IN ('hnsw', 'ivfflat')), 0)::bigint"""


def _has_columns(conn: psycopg.Connection[Any], table: str, *columns: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = ANY(%s)"
        " AND NOT attisdropped",
        (table, list(columns)),
    ).fetchone()
    return bool(row and row[0] == len(columns))


def _cache(conn: psycopg.Connection[Any]) -> CacheStat | None:
    if not _has_columns(conn, "llmbase.cache_entries", "expires_at", "hit_count"):
        return None
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE expires_at <= now()), coalesce(sum(hit_count), 0),"
        " pg_total_relation_size('llmbase.cache_entries') FROM llmbase.cache_entries"
    ).fetchone()
    assert row is not None
    return CacheStat(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def stats(target: Target) -> Stats:
    """Everything `llmbase stats` shows, as one object (read-only, operator scope)."""
    with connect(target) as conn, conn.transaction():
        admin(conn)
        db_row = conn.execute(_DATABASE).fetchone()
        assert db_row is not None
        cur = conn.cursor(row_factory=dict_row)
        tables = []
        for r in cur.execute(_TABLES).fetchall():
            tables.append(TableStat(**r, total_bytes=int(r["table_bytes"]) + int(r["index_bytes"])))
        tables = _merge_archive(tables)
        tables.sort(key=lambda t: (-t.total_bytes, t.schema, t.name))
        indexes = [
            IndexStat(**r, unused=r["scans"] == 0 and not r["unique"] and not r["primary"])
            for r in cur.execute(_INDEXES).fetchall()
        ]
        vacuum = [
            VacuumStat(
                table=r["table"],
                live_rows=int(r["live_rows"]),
                dead_rows=int(r["dead_rows"]),
                dead_ratio=round(r["dead_rows"] / max(1, r["live_rows"] + r["dead_rows"]), 4),
                modified_since_analyze=int(r["modified_since_analyze"]),
                last_vacuum=r["last_vacuum"],
                last_analyze=r["last_analyze"],
                vacuum_count=int(r["vacuum_count"]),
                analyze_count=int(r["analyze_count"]),
            )
            for r in cur.execute(_VACUUM).fetchall()
        ]
        c = conn.execute(_CONNECTIONS).fetchone()
        assert c is not None
        by_state = {str(s): int(n) for s, n in conn.execute(_BY_STATE).fetchall()}
        connections = Connections(int(c[0]), int(c[1]), int(c[2]), by_state, int(c[3]), int(c[4]), c[5])
        parts = retention.partitions(conn)
        arch = conn.execute(_ARCHIVED).fetchone()
        assert arch is not None
        req = next((t for t in tables if t.schema == "llmbase" and t.name == "requests"), None)
        request_log = RequestLog(
            partitions=len(parts),
            oldest=parts[0].lower.date() if parts else None,
            newest=parts[-1].lower.date() if parts else None,
            rows=req.rows if req else 0,
            bytes=req.total_bytes if req else 0,
            archived_partitions=int(arch[0]),
            archived_bytes=int(arch[1]),
        )
        e = conn.execute(_EMBEDDINGS).fetchone()
        assert e is not None
        embeddings = Embeddings(*(int(v) for v in e))
        return Stats(
            database=db_row[0],
            server_version=db_row[1],
            database_bytes=int(db_row[2]),
            collected_at=db_row[3],
            stats_reset=db_row[4],
            tables=tables,
            indexes=indexes,
            vacuum=vacuum,
            connections=connections,
            request_log=request_log,
            embeddings=embeddings,
            cache=_cache(conn),
        )


def _merge_archive(tables: list[TableStat]) -> list[TableStat]:
    """The archive schema's tables (one per archived day) as one row."""
    keep = [t for t in tables if t.kind != "archive"]
    arch = [t for t in tables if t.kind == "archive"]
    if arch:
        keep.append(
            TableStat(
                schema="llmbase_archive",
                name="*",
                kind="archive",
                partitions=len(arch),
                rows=sum(t.rows for t in arch),
                table_bytes=sum(t.table_bytes for t in arch),
                index_bytes=sum(t.index_bytes for t in arch),
                total_bytes=sum(t.total_bytes for t in arch),
            )
        )
    return keep
