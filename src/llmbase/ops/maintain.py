"""`llmbase maintain`: the regular care a llmbase database needs, planned first and then
done (or only reported with `dry_run`). Each task says why it runs.

- request-log partitions: the daily partitions from yesterday to `days_ahead` days ahead
  exist (the writer creates missing ones too, but not in advance).
- expired response-cache entries: `llmbase.clean_expired_cache(limit)`, in batches.
- rate-limit counters of ended windows and expired budget reservations:
  `llmbase.limits_maintenance()`.
- records of deleted tenants and users that arrived after the deletion (in flight in a
  writer's queue or spool): removed for tombstones younger than `orphan_days`.
- VACUUM (ANALYZE) of tables whose dead rows exceed `dead_ratio` of their rows (and at least
  `min_dead` rows); ANALYZE of tables modified by more than `analyze_ratio` of their rows
  since their last analyze (at least `min_modified`), or never analyzed.
- ANALYZE of partitioned tables (the request log, chunks): autovacuum never analyzes a
  partitioned parent, so its planner statistics exist only when someone runs ANALYZE. It
  runs when the parent was never analyzed, or its partitions were analyzed since and the
  parent's statistics are older than `parent_analyze_hours`.

A hook whose SQL function does not exist (an older schema) is reported as skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from ..errors import ValidationError
from ._common import Progress, Target, admin, connect
from .catalog import tenant_tables

__all__ = ["Action", "MaintainResult", "Thresholds", "maintain"]


@dataclass(frozen=True)
class Thresholds:
    dead_ratio: float = 0.10
    min_dead: int = 1_000
    analyze_ratio: float = 0.10
    min_modified: int = 1_000
    parent_analyze_hours: float = 24.0
    days_ahead: int = 7
    orphan_days: int = 30
    cache_batch: int = 10_000

    def check(self) -> Thresholds:
        for name in ("dead_ratio", "analyze_ratio"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1 or v != v:
                raise ValidationError("must be a number between 0 and 1", field=name)
        for name in ("min_dead", "min_modified", "orphan_days", "cache_batch", "days_ahead"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValidationError("must be a non-negative integer", field=name)
        if self.days_ahead > 366:
            raise ValidationError("at most 366", field="days_ahead")
        if self.cache_batch < 1:
            raise ValidationError("must be at least 1", field="cache_batch")
        v = self.parent_analyze_hours
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or v != v:
            raise ValidationError("must be a non-negative number", field="parent_analyze_hours")
        return self


@dataclass
class Action:
    task: str  # partitions | cache | limits | orphans | vacuum | analyze | skipped
    target: str
    reason: str
    done: bool = False
    result: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class MaintainResult:
    dry_run: bool
    started_at: datetime
    actions: list[Action] = field(default_factory=list)

    @property
    def skipped(self) -> list[Action]:
        return [a for a in self.actions if a.task == "skipped"]


_HOOKS = {
    "cache": "llmbase.clean_expired_cache(integer)",
    "limits": "llmbase.limits_maintenance()",
}

_TABLE_STATS = """
SELECT s.relid, s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       greatest(s.last_analyze, s.last_autoanalyze) AS analyzed
  FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
 WHERE s.schemaname = 'llmbase' AND c.relkind = 'r'
 ORDER BY s.relname"""

# Partitioned tables: when the parent was last analyzed (its own statistics row, if the
# server reports one; else whether pg_statistic holds anything for it), the newest analyze
# of its partitions, and its rows.
_PARENTS = """
SELECT c.oid, c.relname,
       (SELECT greatest(s.last_analyze, s.last_autoanalyze) FROM pg_stat_user_tables s
         WHERE s.relid = c.oid) AS analyzed,
       EXISTS (SELECT FROM pg_statistic st WHERE st.starelid = c.oid) AS has_stats,
       (SELECT max(greatest(s.last_analyze, s.last_autoanalyze))
          FROM pg_partition_tree(c.oid) t JOIN pg_stat_user_tables s ON s.relid = t.relid
         WHERE t.isleaf) AS parts_analyzed,
       (SELECT coalesce(sum(s.n_live_tup), 0) FROM pg_partition_tree(c.oid) t
          JOIN pg_stat_user_tables s ON s.relid = t.relid WHERE t.isleaf) AS rows
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'llmbase' AND c.relkind = 'p' AND NOT c.relispartition
 ORDER BY c.relname"""


def _exists(conn: psycopg.Connection[Any], signature: str) -> bool:
    row = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (signature,)).fetchone()
    return bool(row and row[0])


def _plan(conn: psycopg.Connection[Any], th: Thresholds, today: date) -> list[Action]:
    actions: list[Action] = []
    # Partitions ahead.
    lo, hi = today - timedelta(days=1), today + timedelta(days=th.days_ahead)
    row = conn.execute(
        "SELECT count(*) FROM generate_series(%s::date, %s::date, interval '1 day') d"
        " WHERE to_regclass('llmbase.requests_p' || to_char(d, 'YYYYMMDD')) IS NULL",
        (lo, hi),
    ).fetchone()
    missing = int(row[0]) if row else 0
    if missing:
        actions.append(
            Action("partitions", "llmbase.requests", f"{missing} daily partitions missing from {lo} to {hi}")
        )
    # Hooks of other features.
    for task, signature in _HOOKS.items():
        if not _exists(conn, signature):
            actions.append(Action("skipped", signature.split("(")[0], f"{signature} does not exist"))
            continue
        if task == "cache":
            r = conn.execute(
                "SELECT count(*) FROM llmbase.cache_entries WHERE expires_at <= now()"
            ).fetchone()
            n = int(r[0]) if r else 0
            if n:
                actions.append(Action("cache", "llmbase.cache_entries", f"{n} expired entries"))
        else:
            r = conn.execute(
                "SELECT (SELECT count(*) FROM llmbase.rate_limit_counters WHERE window_end <= now()),"
                " (SELECT count(*) FROM llmbase.budget_reservations WHERE NOT released AND expires_at < now())"
            ).fetchone()
            counters, reservations = (int(r[0]), int(r[1])) if r else (0, 0)
            if counters or reservations:
                actions.append(
                    Action(
                        "limits",
                        "llmbase.rate_limit_counters, llmbase.budget_reservations",
                        f"{counters} counters of ended windows, {reservations} expired reservations",
                    )
                )
    # Rows of deleted tenants and users that arrived after their deletion.
    orphans = _orphans(conn, th.orphan_days, count_only=True)
    if orphans:
        detail = ", ".join(f"{t} {n}" for t, n in sorted(orphans.items()))
        actions.append(
            Action("orphans", "deleted tenants and users", f"rows that arrived after the deletion: {detail}")
        )
    # VACUUM / ANALYZE.
    for _, schema, name, live, dead, mod, analyzed in conn.execute(_TABLE_STATS).fetchall():
        target = f"{schema}.{name}"
        total = live + dead
        if dead >= max(1, th.min_dead) and dead > th.dead_ratio * total:
            actions.append(
                Action("vacuum", target, f"{dead} dead rows ({dead / max(1, total):.0%} of {total})")
            )
        elif analyzed is None and live > 0:
            actions.append(Action("analyze", target, f"never analyzed ({live} rows)"))
        elif mod >= max(1, th.min_modified) and mod > th.analyze_ratio * live:
            actions.append(
                Action("analyze", target, f"{mod} rows modified since the last analyze ({live} rows)")
            )
    now = datetime.now(UTC)
    for _, name, analyzed, has_stats, parts_analyzed, rows in conn.execute(_PARENTS).fetchall():
        target = f"llmbase.{name}"
        if not rows:
            continue
        if analyzed is None and not has_stats:
            actions.append(
                Action("analyze", target, "partitioned table never analyzed (autovacuum never does)")
            )
        elif (
            analyzed is not None
            and parts_analyzed is not None
            and parts_analyzed > analyzed
            and now - analyzed > timedelta(hours=th.parent_analyze_hours)
        ):
            actions.append(
                Action(
                    "analyze",
                    target,
                    f"partitions re-analyzed since the parent's statistics of {analyzed:%Y-%m-%d %H:%M}",
                )
            )
    return actions


def _orphans(conn: psycopg.Connection[Any], days: int, *, count_only: bool) -> dict[str, int]:
    """Rows of tombstoned tenants (that do not exist again) and users, per table."""
    tombs = conn.execute(
        "SELECT d.kind, d.subject, d.owner FROM llmbase.deleted_subjects d"
        " WHERE d.deleted_at > now() - make_interval(days => %s)"
        "   AND NOT EXISTS (SELECT FROM llmbase.tenants t WHERE d.kind = 'tenant' AND t.id = d.subject)"
        "   AND NOT EXISTS (SELECT FROM llmbase.users u WHERE d.kind = 'user' AND u.tenant_id = d.owner"
        "                   AND u.id = d.subject)",
        (days,),
    ).fetchall()
    if not tombs:
        return {}
    tenants = [s for k, s, _ in tombs if k == "tenant"]
    users = [(o, s) for k, s, o in tombs if k == "user"]
    found: dict[str, int] = {}
    for t in tenant_tables(conn):
        if t.kind == "partition" or t.qualified == "llmbase.audit_log":
            continue
        parts: list[sql.Composable] = []
        params: list[Any] = []
        if tenants:
            parts.append(sql.SQL("tenant_id = ANY(%s)"))
            params.append(tenants)
        if users and t.has_user_id:
            parts.append(
                sql.SQL("(tenant_id, {}) IN (SELECT * FROM unnest(%s::uuid[], %s::uuid[]))").format(
                    sql.Identifier(t.user_column or "user_id")
                )
            )
            params.extend([[o for o, _ in users], [s for _, s in users]])
        if not parts:
            continue
        where = sql.SQL(" OR ").join(parts)
        if count_only:
            q = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(t.ident, where)
            r = conn.execute(q, params).fetchone()
            n = int(r[0]) if r else 0
        else:
            n = conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(t.ident, where), params).rowcount
        if n:
            found[t.qualified] = n
    return found


def _run(conn: psycopg.Connection[Any], a: Action, th: Thresholds, today: date) -> None:
    if a.task in ("vacuum", "analyze"):
        prev = conn.autocommit
        conn.autocommit = True  # VACUUM cannot run inside a transaction block
        try:
            schema, name = a.target.split(".", 1)
            verb = "VACUUM (ANALYZE) {}" if a.task == "vacuum" else "ANALYZE {}"
            conn.execute(sql.SQL(verb).format(sql.Identifier(schema, name)))
        finally:
            conn.autocommit = prev
        return
    with conn.transaction():
        admin(conn)
        if a.task == "partitions":
            r = conn.execute(
                "SELECT llmbase.ensure_request_partitions(%s, %s)",
                (today - timedelta(days=1), today + timedelta(days=th.days_ahead)),
            ).fetchone()
            a.result = {"created": int(r[0]) if r else 0}
        elif a.task == "limits":
            r = conn.execute("SELECT * FROM llmbase.limits_maintenance()").fetchone()
            names = ("counters_deleted", "reservations_released", "reservations_deleted")
            a.result = dict(zip(names, (int(v) for v in r), strict=False)) if r else {}
        elif a.task == "orphans":
            a.result = _orphans(conn, th.orphan_days, count_only=False)
    if a.task == "cache":  # in batches, one transaction each
        total = 0
        while True:
            with conn.transaction():
                admin(conn)
                r = conn.execute("SELECT llmbase.clean_expired_cache(%s)", (th.cache_batch,)).fetchone()
            n = int(r[0]) if r else 0
            total += n
            if n < th.cache_batch:
                break
        a.result = {"deleted": total}


def maintain(
    target: Target,
    *,
    dry_run: bool = False,
    thresholds: Thresholds | None = None,
    progress: Progress | None = None,
) -> MaintainResult:
    """Plan the maintenance the database needs, then do it (unless `dry_run`)."""
    th = (thresholds or Thresholds()).check()
    today = datetime.now(UTC).date()
    with connect(target) as conn:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise ValidationError("the connection has a transaction open", field="target")
        started = datetime.now(UTC)
        with conn.transaction():
            admin(conn)
            actions = _plan(conn, th, today)
        result = MaintainResult(dry_run, started, actions)
        if dry_run:
            return result
        todo = [a for a in actions if a.task != "skipped"]
        for i, a in enumerate(todo):
            if progress:
                progress(i, len(todo), f"{a.task} {a.target}")
            t0 = time.perf_counter()
            _run(conn, a, th, today)
            a.seconds = round(time.perf_counter() - t0, 3)
            a.done = True
        if progress:
            progress(len(todo), len(todo), "done")
        return result
