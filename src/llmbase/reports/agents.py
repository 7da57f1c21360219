"""Agent-run reports (seed 004): statistics per iteration number with the median, iteration
timing per hour, and completed conversations.

Tenant-wide (no user or run-name filter) the iteration reports read
llmbase.run_iteration_rollups: whole UTC days from the day rows, the partial days at the
edges from the hour rows (ranges widened to whole hours, like every rollup report), and
the median from the API-time histogram (within llmbase.histogram.RELATIVE_ERROR of the
lower middle value). With a user or run-name filter they read the raw iterations (exact
median, percentile_cont)."""

from __future__ import annotations

from uuid import UUID

from psycopg import sql

from ..stores._common import Ctx, check_limit
from ..stores._plan import Plan, Query
from ._filters import Span, Where, pieces, resolve
from ._time import When
from .rows import Completion, IterationStats, IterationTrend

__all__ = ["completions", "iteration_trends", "iterations"]

_ITERATIONS = """
SELECT i.iteration, count(*)::int AS samples,
       avg(i.api_ms) AS avg_api_ms, min(i.api_ms) AS min_api_ms, max(i.api_ms) AS max_api_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY i.api_ms) AS median_api_ms,
       avg(i.tool_ms) AS avg_tool_ms, avg(i.total_ms) AS avg_total_ms
  FROM llmbase.run_iterations AS i{join}{where}
 GROUP BY i.iteration
HAVING count(*) >= %s
 ORDER BY i.iteration"""

_TRENDS = """
SELECT date_trunc('hour', i.started_at, 'UTC') AS hour, count(*)::int AS iterations,
       avg(i.api_ms) AS avg_api_ms, avg(i.tool_ms) AS avg_tool_ms, avg(i.total_ms) AS avg_total_ms
  FROM llmbase.run_iterations AS i{join}{where}
 GROUP BY 1
 ORDER BY 1 DESC"""

_ROLLUP_ITERATIONS = """
SELECT r.iteration, sum(r.iterations)::int AS samples,
       sum(r.api_ms_sum) / sum(r.iterations) AS avg_api_ms, min(r.api_ms_min) AS min_api_ms,
       max(r.api_ms_max) AS max_api_ms,
       llmbase.hist_quantile(llmbase.hist_sum(r.api_hist), 0.5) AS median_api_ms,
       sum(r.tool_ms_sum) / sum(r.iterations) AS avg_tool_ms,
       sum(r.total_ms_sum) / nullif(sum(r.total_count), 0) AS avg_total_ms
  FROM {source}
 GROUP BY r.iteration
HAVING sum(r.iterations) >= %s
 ORDER BY r.iteration"""

_ROLLUP_TRENDS = """
SELECT r.bucket_start AS hour, sum(r.iterations)::int AS iterations,
       sum(r.api_ms_sum) / sum(r.iterations) AS avg_api_ms,
       sum(r.tool_ms_sum) / sum(r.iterations) AS avg_tool_ms,
       sum(r.total_ms_sum) / nullif(sum(r.total_count), 0) AS avg_total_ms
  FROM {source}
 GROUP BY r.bucket_start
HAVING sum(r.iterations) > 0
 ORDER BY r.bucket_start DESC"""

_JOIN_RUNS = " JOIN llmbase.runs AS r ON r.tenant_id = i.tenant_id AND r.id = i.run_id"

_COMPLETIONS = """
SELECT c.id AS conversation_id, c.tenant_id, c.user_id, c.title, c.total_iterations, c.total_time_ms,
       c.total_time_ms::float8 / nullif(c.total_iterations, 0) AS avg_ms_per_iteration, c.completed_at
  FROM llmbase.conversations AS c{where}
 ORDER BY c.completed_at DESC, c.id DESC
 LIMIT %s"""


def _iteration_where(span: Span, run_name: str | None) -> tuple[sql.Composable, Where]:
    where = Where()
    if span.tenant_id is not None:
        where.add("i.tenant_id = %s", span.tenant_id)
    if span.since is not None:
        where.add("i.started_at >= %s", span.since)
    if span.until is not None:
        where.add("i.started_at < %s", span.until)
    join = sql.SQL("")
    if span.user_ids is not None or run_name is not None:
        join = sql.SQL(_JOIN_RUNS)
        if span.user_ids is not None:
            where.add("r.user_id = ANY(%s)", list(span.user_ids))
        if run_name is not None:
            where.add("r.name = %s", run_name)
    return join, where


def _rollup_source(span: Span, *, hourly: bool) -> tuple[sql.Composable, list[object]]:
    """llmbase.run_iteration_rollups rows (alias r) covering the span."""
    parts: list[sql.Composable] = []
    params: list[object] = []
    for grain, lo, hi in pieces(span, "hour" if hourly else None):
        w = Where().add("grain = %s", grain)
        if span.tenant_id is not None:
            w.add("tenant_id = %s", span.tenant_id)
        if lo is not None:
            w.add("bucket_start >= %s", lo)
        if hi is not None:
            w.add("bucket_start < %s", hi)
        parts.append(sql.SQL("SELECT * FROM llmbase.run_iteration_rollups{}").format(w.clause()))
        params.extend(w.params)
    return sql.SQL("(") + sql.SQL(" UNION ALL ").join(parts) + sql.SQL(") AS r"), params


def iterations(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    user: UUID | str | None = None,
    tenant: UUID | str | None = None,
    run_name: str | None = None,
    min_samples: int = 1,
) -> Plan[list[IterationStats]]:
    """Per iteration number: samples, mean/min/max/median API time, mean tool and total
    time. `min_samples=3` keeps only well-sampled iterations (seed 004's HAVING)."""
    span = yield from resolve(ctx, since=since, until=until, tenant=tenant, user=user)
    n = check_limit(min_samples, 1_000_000_000)
    if span.user_ids is None and run_name is None:
        source, params = _rollup_source(span, hourly=False)
        rq = sql.SQL(_ROLLUP_ITERATIONS).format(source=source)
        stats: list[IterationStats] = yield Query(rq, (*params, n), row=IterationStats)
        return stats
    join, where = _iteration_where(span, run_name)
    q = sql.SQL(_ITERATIONS).format(join=join, where=where.clause())
    rows: list[IterationStats] = yield Query(q, (*where.params, n), row=IterationStats)
    return rows


def iteration_trends(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    user: UUID | str | None = None,
    tenant: UUID | str | None = None,
    run_name: str | None = None,
) -> Plan[list[IterationTrend]]:
    """Iterations and their mean API, tool and total time per hour, newest first."""
    span = yield from resolve(ctx, since=since, until=until, tenant=tenant, user=user)
    if span.user_ids is None and run_name is None:
        source, params = _rollup_source(span, hourly=True)
        rq = sql.SQL(_ROLLUP_TRENDS).format(source=source)
        trends: list[IterationTrend] = yield Query(rq, params, row=IterationTrend)
        return trends
    join, where = _iteration_where(span, run_name)
    q = sql.SQL(_TRENDS).format(join=join, where=where.clause())
    rows: list[IterationTrend] = yield Query(q, where.params, row=IterationTrend)
    return rows


def completions(
    ctx: Ctx,
    *,
    since: When | None = None,
    until: When | None = None,
    user: UUID | str | None = None,
    tenant: UUID | str | None = None,
    limit: int = 10,
) -> Plan[list[Completion]]:
    """Completed conversations, latest first: iterations, total time, time per iteration."""
    span = yield from resolve(ctx, since=since, until=until, tenant=tenant, user=user)
    where = Where().add("c.completed_at IS NOT NULL")
    if span.tenant_id is not None:
        where.add("c.tenant_id = %s", span.tenant_id)
    if span.user_ids is not None:
        where.add("c.user_id = ANY(%s)", list(span.user_ids))
    if span.since is not None:
        where.add("c.completed_at >= %s", span.since)
    if span.until is not None:
        where.add("c.completed_at < %s", span.until)
    q = sql.SQL(_COMPLETIONS).format(where=where.clause())
    rows: list[Completion] = yield Query(q, (*where.params, check_limit(limit)), row=Completion)
    return rows
